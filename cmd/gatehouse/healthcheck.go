package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// healthcheckUsage is the help text of `gatehouse healthcheck`.
const healthcheckUsage = `Usage: gatehouse healthcheck [--addr host:port] [--timeout 3s]

Asks a running server for GET /health and exits 0 when it answers 200,
1 otherwise. Meant for container health checks: it needs no shell or curl.
An unspecified listen host (0.0.0.0, ::, or none) is reached on loopback.

Flags:
`

// cmdHealthcheck runs `gatehouse healthcheck`.
func cmdHealthcheck(ctx context.Context, args []string, s stdio) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := bindConfig(fs, setAddr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	usage := func(w io.Writer) {
		fmt.Fprint(w, healthcheckUsage)
		fmt.Fprintf(w, "  --config file\n      YAML config file whose addr is used (env %s)\n", envConfig)
		printSettings(w, []*setting{setAddr})
		fmt.Fprint(w, "  --timeout duration\n      how long to wait for the answer · default 3s\n")
	}
	if code, done := parseFlags(fs, args, usage, s); done {
		return code
	}
	cfg, err := cf.load(s.lookupEnv)
	if err != nil {
		fmt.Fprintf(s.stderr, "gatehouse healthcheck: %v\n", err)
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintln(s.stderr, "gatehouse healthcheck: --timeout must be positive")
		return exitUsage
	}
	if err := healthcheck(ctx, cfg.Addr, *timeout); err != nil {
		fmt.Fprintf(s.stderr, "gatehouse healthcheck: %v\n", err)
		return exitFail
	}
	return exitOK
}

// healthcheck GETs http://<addr>/health and wants 200.
func healthcheck(ctx context.Context, addr string, timeout time.Duration) error {
	target, err := dialAddr(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/health", nil)
	if err != nil {
		return err
	}
	// A client of its own: no proxy from the environment, no keep-alive.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	return nil
}

// dialAddr turns a listen address into one to connect to: a server that
// listens on every interface is reached on loopback.
func dialAddr(addr string) (string, error) {
	if err := checkAddr(addr, false); err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(addr)
	switch ip := net.ParseIP(host); {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
