// Command load measures POST /v1/actions on a real Gatehouse against a
// stock `opa run --server` serving the equivalent Rego and data (POST
// /v1/data/gatehouse/decision/result) with the same corpus, on loopback,
// by the protocol of issue 11:
//
//   - both servers built here (gatehouse from -gatehouse-src with the
//     Makefile's flags, opa at the version pinned in go.mod), pinned to
//     -server-cpus with taskset and run with GOMAXPROCS=-gomaxprocs (1);
//   - both started, provisioned (the -scale world of test/scale, through
//     the admin and policy APIs) and warmed up — one pass over the corpus,
//     then -warmup of closed-loop load — before anything is measured;
//   - then -segments segments of -duration per target, alternating, with
//     -concurrency closed-loop clients, so background load on a shared
//     machine falls on both sides alike; gatehouse's compile counter
//     (gatehouse_engine_cache_misses_total) is read around each segment,
//     and must stay still;
//   - it reports each segment, then per target the median requests/s,
//     p50 and p99, the summed errors and compiles, peak RSS, and the ratio
//     of the medians (and of each segment pair).
//
// Run the tool itself under `taskset -c 1` to keep the load generator off
// the servers' core; `make load` does both:
//
//	go run ./test/load -scale M -concurrency 16 -segments 3 -duration 10s -targets gatehouse,opa
//
// -baseline-src DIR adds target "baseline", gatehouse built from DIR (a
// checkout of main), to the same alternation: a before and after in one
// run. -perf FILE records each gatehouse's CPU during its segments with
// `perf record -g` (FILE.<target>.1, FILE.<target>.2, ...). -server-log DIR
// keeps every server's stderr in DIR/<target>.<replica>.log, for instance
// the collector's trace of each cycle with -env GODEBUG=gctrace=1.
//
// -gatehouse-args and -env add flags and environment variables to gatehouse
// serve; with -sink, the tool also serves an HTTP endpoint that accepts and
// discards every POST (an OTLP/HTTP trace receiver, a decision-log
// endpoint), and {sink} in those flags and variables is its URL. Observability
// on against off, on the same pinning:
//
//	go run ./test/load -targets gatehouse -sink \
//	    -env OTEL_EXPORTER_OTLP_ENDPOINT={sink} -env OTEL_TRACES_SAMPLER=parentbased_traceidratio \
//	    -env OTEL_TRACES_SAMPLER_ARG=0.1 -gatehouse-args '--decision-log http --decision-log-url {sink}/logs'
//	go run ./test/load -targets gatehouse
//
// With -replicas N it starts N gatehouse processes on one -store (a
// PostgreSQL database: each replica must see the others' writes), pins
// replica i to the i-th of the ';'-separated -server-cpus lists, provisions
// through the first and spreads the load round-robin over all of them, as
// a load balancer would:
//
//	createdb -h 127.0.0.1 -U postgres gh_load
//	go run ./test/load -targets gatehouse,opa -replicas 2 -server-cpus '0;1' \
//	    -store 'postgres://postgres@127.0.0.1:5432/gh_load?sslmode=disable'
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/engine"
	library "github.com/gatehouse-pdp/gatehouse/rego"
	"github.com/gatehouse-pdp/gatehouse/test/scale"
)

type options struct {
	scale       string
	concurrency int
	duration    time.Duration
	targets     []string
	serverCPUs  string
	replicas    int
	store       string
	extraArgs   []string
	env         []string // KEY=VALUE for gatehouse serve
	sink        bool
	work        string
	segments    int
	corpus      int
	warmup      time.Duration
	gomaxprocs  int
	source      string // the gatehouse tree to build
	baseline    string // the tree of target "baseline"
	perf        string // perf record output of the gatehouse segments
	serverLog   string // directory that keeps the servers' stderr ("" drops it)
	latencyLog  string // directory that keeps every measured request's latency ("" drops them)
}

// result is one target's segment, or the summary of its segments.
type result struct {
	Target   string  `json:"target"`
	Segment  int     `json:"segment,omitempty"`
	Replicas int     `json:"replicas,omitempty"` // gatehouse processes, when more than one
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	Compiles int     `json:"compiles"` // prepared queries compiled during the segment(s); -1 unknown
	// CPUusPerReq is the servers' user+system CPU time per request.
	CPUusPerReq float64  `json:"cpu_us_per_request"`
	PeakRSSMiB  float64  `json:"peak_rss_mib,omitempty"`
	Segments    []result `json:"segments,omitempty"`
}

func main() {
	var o options
	var targets, extra string
	flag.StringVar(&o.scale, "scale", "M", "corpus: S, M or L (test/scale)")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent clients (1..256)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of one segment (1s..5m)")
	flag.IntVar(&o.corpus, "corpus", 5000, "requests in the corpus: the scale's actions, extended with more actions of the same tenants and agents (deterministic) up to this many")
	flag.IntVar(&o.segments, "segments", 3, "measured segments per target, alternating between the targets (1..50)")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "closed-loop warm-up per target after one pass over the corpus, before any segment (0..5m)")
	flag.IntVar(&o.gomaxprocs, "gomaxprocs", 1, "GOMAXPROCS of both servers (0: leave unset)")
	flag.StringVar(&o.source, "gatehouse-src", ".", "directory of the gatehouse tree to build")
	flag.StringVar(&o.baseline, "baseline-src", "", "directory of another gatehouse tree (a checkout of main), measured as target \"baseline\" in the same alternation: a before and after in one run")
	flag.StringVar(&o.perf, "perf", "", "record a CPU profile of gatehouse during its measured segments with `perf record -g` to this file (needs perf)")
	flag.StringVar(&o.serverLog, "server-log", "", "directory (created) that keeps each server's stderr, as <target>.<replica>.log (gatehouse's JSON log, and the runtime's output such as GODEBUG=gctrace=1 from -env); empty: dropped")
	flag.StringVar(&o.latencyLog, "latency-log", "", "directory (created) that keeps every measured request as <target>.<segment>.tsv: client, start (µs since the segment's start) and latency (µs), tab-separated; requests slower than the p99 that start close together are a pause every client waited through")
	flag.StringVar(&targets, "targets", "gatehouse,opa", "comma-separated: gatehouse, opa, baseline (see -baseline-src); segments alternate in this order")
	flag.StringVar(&o.serverCPUs, "server-cpus", "0", "CPU list for the servers (taskset -c); with -replicas, one list per replica separated by ';' (\"0;1\"), reused in turn when there are fewer; empty: no pinning")
	flag.IntVar(&o.replicas, "replicas", 1, "gatehouse serve processes on one -store, load spread round-robin (1..16; more than 1 needs a postgres:// -store)")
	flag.StringVar(&o.store, "store", "", "gatehouse --store (default: sqlite in the work directory); give an empty database, tenants are created anew")
	flag.StringVar(&extra, "gatehouse-args", "", "extra flags for gatehouse serve, space-separated")
	flag.StringVar(&o.work, "work", "", "work directory (default: a temporary one, removed after)")
	flag.Func("env", "KEY=VALUE added to gatehouse serve's environment (repeatable); {sink} is the -sink URL", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("%q: want KEY=VALUE", v)
		}
		o.env = append(o.env, v)
		return nil
	})
	flag.BoolVar(&o.sink, "sink", false, "serve an HTTP endpoint in this process that accepts and discards every POST (OTLP traces, decision logs); {sink} in -gatehouse-args and -env is its URL")
	flag.Parse()
	o.targets = strings.Split(targets, ",")
	o.extraArgs = strings.Fields(extra)
	if o.concurrency < 1 || o.concurrency > 256 || o.duration < time.Second || o.duration > 5*time.Minute {
		log.Fatal("concurrency must be 1..256 and duration 1s..5m")
	}
	if o.segments < 1 || o.segments > 50 || o.warmup < 0 || o.warmup > 5*time.Minute || o.gomaxprocs < 0 {
		log.Fatal("segments must be 1..50, warmup 0..5m, gomaxprocs ≥ 0")
	}
	if o.replicas < 1 || o.replicas > 16 {
		log.Fatal("replicas must be 1..16")
	}
	if o.replicas > 1 && !strings.HasPrefix(o.store, "postgres://") && !strings.HasPrefix(o.store, "postgresql://") {
		log.Fatal("-replicas above 1 needs a shared -store postgres://...")
	}
	if o.sink {
		stop, err := startSink(&o)
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// startSink serves the discarding endpoint on loopback and puts its URL in
// place of {sink} in o's gatehouse flags and environment. The returned
// function stops it and logs what it took.
func startSink(o *options) (func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var posts, bytesIn atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		posts.Add(1)
		bytesIn.Add(n)
		if r.URL.Path == "/v1/traces" {
			// An empty ExportTraceServiceResponse: full success.
			w.Header().Set("Content-Type", "application/x-protobuf")
		}
		w.WriteHeader(http.StatusOK)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	for i, a := range o.extraArgs {
		o.extraArgs[i] = strings.ReplaceAll(a, "{sink}", url)
	}
	for i, e := range o.env {
		o.env[i] = strings.ReplaceAll(e, "{sink}", url)
	}
	return func() {
		_ = srv.Close()
		log.Printf("sink %s: %d POSTs, %.1f MiB", url, posts.Load(), float64(bytesIn.Load())/(1<<20))
	}, nil
}

func run(o options) error {
	var s *scale.Scale
	switch o.scale {
	case "S":
		s = scale.S()
	case "M":
		s = scale.M()
	case "L":
		s = scale.L()
	default:
		return fmt.Errorf("unknown scale %q", o.scale)
	}
	extendCorpus(s, o.corpus)
	if o.work == "" {
		dir, err := os.MkdirTemp("", "gatehouse-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.work = dir
	}
	// Every target is started, provisioned and warmed before the first
	// segment, then the segments alternate between them: whatever else
	// the machine runs meanwhile falls on both sides alike.
	var sides []*side
	defer func() {
		for _, sd := range sides {
			sd.stop()
		}
	}()
	for _, t := range o.targets {
		var sd *side
		var err error
		switch t {
		case "gatehouse":
			sd, err = startGatehouse(o, s, t, o.source)
		case "baseline":
			if o.baseline == "" {
				err = errors.New("target baseline needs -baseline-src")
				break
			}
			if o.store != "" {
				err = errors.New("target baseline needs its own store: leave -store empty (SQLite)")
				break
			}
			sd, err = startGatehouse(o, s, t, o.baseline)
		case "opa":
			sd, err = startOPA(o, s)
		default:
			err = fmt.Errorf("unknown target %q", t)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		sides = append(sides, sd)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency, MaxConnsPerHost: o.concurrency}, Timeout: 10 * time.Second}
	for _, sd := range sides {
		log.Printf("%s: warming up (one pass over %d requests, then %s)", sd.name, len(sd.reqs), o.warmup)
		for _, r := range sd.reqs {
			do(client, r, sd.ok)
		}
		if o.warmup > 0 {
			drive(client, o, sd.reqs, sd.ok, o.warmup)
		}
	}
	profs := map[*side]*profiler{} // every gatehouse side, with -perf
	for _, sd := range sides {
		if o.perf == "" || strings.HasPrefix(sd.name, "opa") {
			continue
		}
		p, err := startPerf(o.perf+"."+sd.name, sd.pids())
		if err != nil {
			return err
		}
		profs[sd] = p
	}
	for seg := range o.segments {
		for _, sd := range sides {
			before, cpu0 := sd.compiles(), sd.cpuTime()
			if p := profs[sd]; p != nil {
				p.resume()
			}
			r, lat := drive(client, o, sd.reqs, sd.ok, o.duration)
			if p := profs[sd]; p != nil {
				p.pause()
			}
			r.Compiles = sd.compiles() - before
			if r.Requests > 0 {
				r.CPUusPerReq = float64((sd.cpuTime() - cpu0).Microseconds()) / float64(r.Requests)
			}
			r.Target = sd.name
			r.Segment = seg + 1
			sd.segments = append(sd.segments, r)
			log.Printf("segment %d %-10s %8.0f rps  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  errors %d  compiles %d  server CPU %4.0f µs/request",
				seg+1, sd.name, r.RPS, r.P50ms, r.P99ms, r.P999ms, r.Errors, r.Compiles, r.CPUusPerReq)
			if o.latencyLog != "" {
				if err := writeLatencyLog(filepath.Join(o.latencyLog, fmt.Sprintf("%s.%d.tsv", sd.name, seg+1)), lat); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range profs {
		if err := p.stop(); err != nil {
			return err
		}
	}
	var results []result
	for _, sd := range sides {
		r := summarize(sd.segments)
		r.Target = sd.name
		r.PeakRSSMiB = sd.peakRSS()
		if len(sd.srvs) > 1 {
			r.Replicas = len(sd.srvs)
		}
		results = append(results, r)
	}

	fmt.Printf("\nscale %s, %d actions, %d clients, %d segments of %s per target (alternating), warm-up %s, servers on CPUs %q, GOMAXPROCS=%d",
		o.scale, len(s.Actions), o.concurrency, o.segments, o.duration, o.warmup, o.serverCPUs, o.gomaxprocs)
	if o.replicas > 1 {
		fmt.Printf(", %d gatehouse replicas (RSS summed)", o.replicas)
	}
	fmt.Println()
	fmt.Printf("%-10s %10s %8s %9s %9s %9s %7s %9s %11s %9s\n", "target", "requests", "rps", "p50 ms", "p99 ms", "p99.9 ms", "errors", "compiles", "CPU µs/req", "RSS MiB")
	for _, r := range results {
		fmt.Printf("%-10s %10d %8.0f %9.2f %9.2f %9.2f %7d %9d %11.0f %9.1f\n", r.Target, r.Requests, r.RPS, r.P50ms, r.P99ms, r.P999ms, r.Errors, r.Compiles, r.CPUusPerReq, r.PeakRSSMiB)
	}
	fmt.Println("(requests, errors and compiles summed over the segments; rps, p50, p99, p99.9 and CPU per request their medians)")
	// Every other target against the last one (list opa last for
	// "× stock OPA"): the ratio of the medians, and of each segment pair.
	ref := len(sides) - 1
	for i := range ref {
		if results[ref].RPS == 0 {
			break
		}
		var ratios []float64
		for j := range sides[i].segments {
			ratios = append(ratios, sides[i].segments[j].RPS/sides[ref].segments[j].RPS)
		}
		fmt.Printf("ratio %s/%s requests/s: %.2f× (medians); per segment pair: %s; CPU per request %.2f×\n",
			results[i].Target, results[ref].Target, results[i].RPS/results[ref].RPS, formatRatios(ratios),
			results[i].CPUusPerReq/results[ref].CPUusPerReq)
	}
	for i, sd := range sides {
		if p := profs[sd]; p != nil && len(p.out) > 0 {
			if err := printBudget(sd.name, p.out, results[i].CPUusPerReq); err != nil {
				log.Printf("budget: %v", err)
			}
		}
	}
	out, _ := json.Marshal(results)
	fmt.Println(string(out))
	return nil
}

// extendCorpus adds actions to s, cycling through its tenants' and
// agents' actions, until it has n; the same n gives the same corpus.
func extendCorpus(s *scale.Scale, n int) {
	r := rand.New(rand.NewPCG(11, uint64(n)))
	base := len(s.Actions)
	for i := 0; len(s.Actions) < n && base > 0; i++ {
		a := s.Actions[i%base]
		s.Actions = append(s.Actions, scale.Action(r, a.TenantID, a.AgentID))
	}
}

func formatRatios(rs []float64) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%.2f×", r)
	}
	return strings.Join(parts, " ")
}

// summarize is the medians of the segments' rates and percentiles, and
// the sums of their counts.
func summarize(segs []result) result {
	var r result
	var rps, p50, p99, p999, cpu []float64
	for _, s := range segs {
		r.Requests += s.Requests
		r.Errors += s.Errors
		r.Compiles += s.Compiles
		rps, p50, p99, p999, cpu = append(rps, s.RPS), append(p50, s.P50ms), append(p99, s.P99ms), append(p999, s.P999ms), append(cpu, s.CPUusPerReq)
	}
	r.RPS, r.P50ms, r.P99ms, r.P999ms, r.CPUusPerReq = median(rps), median(p50), median(p99), median(p999), median(cpu)
	r.Segments = segs
	return r
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// side is one target, started, provisioned and ready to drive.
type side struct {
	name     string
	srvs     []*server
	reqs     []request
	ok       func([]byte) bool
	metrics  []string // gatehouse /metrics URLs, one per replica
	segments []result
}

func (sd *side) stop() {
	for _, srv := range sd.srvs {
		srv.stop()
	}
}

func (sd *side) pids() []int {
	var ps []int
	for _, srv := range sd.srvs {
		ps = append(ps, srv.cmd.Process.Pid)
	}
	return ps
}

// cpuTime is the servers' user+system CPU time so far, from
// /proc/<pid>/stat (0 where that cannot be read).
func (sd *side) cpuTime() time.Duration {
	var sum time.Duration
	for _, pid := range sd.pids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the parenthesized command name; utime and stime
		// are the 14th and 15th fields of the line, in clock ticks
		// (USER_HZ, 100 on Linux).
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		sum += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return sum
}

func (sd *side) peakRSS() float64 {
	var sum float64
	for _, srv := range sd.srvs {
		sum += srv.peakRSS()
	}
	return sum
}

// compiles is how many prepared queries gatehouse compiled so far (cache
// misses, summed over replicas); -1 when it cannot be read. A stock opa
// has no such counter: it is warmed up the same way and reports 0.
func (sd *side) compiles() int {
	n := 0
	for _, u := range sd.metrics {
		c, err := readCounter(u, "gatehouse_engine_cache_misses_total")
		if err != nil {
			log.Printf("compile counter: %v", err)
			return -1
		}
		n += int(c)
	}
	return n
}

// readCounter reads one unlabelled sample from a Prometheus text page.
func readCounter(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}

// request is one prepared HTTP call of the corpus.
type request struct {
	url  string
	key  string
	body []byte
}

// serverEnv is the environment both servers get: GOMAXPROCS pinned alike.
func serverEnv(o options, extra []string) []string {
	env := slices.Clone(extra)
	if o.gomaxprocs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", o.gomaxprocs))
	}
	return env
}

func startGatehouse(o options, s *scale.Scale, name, src string) (*side, error) {
	bin := filepath.Join(o.work, name)
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/gatehouse")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	store := o.store
	if store == "" {
		store = "sqlite://" + filepath.Join(o.work, name+".db")
	}
	token := "load-admin-token-0123456789"
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--store", store, "--admin-token", token, "--log-level", "info"}, o.extraArgs...)
	cpus := strings.Split(o.serverCPUs, ";")
	sd := &side{name: name, ok: func(b []byte) bool { return bytes.Contains(b, []byte(`"policy_result"`)) }}
	var bases []string // one per replica
	for i := range o.replicas {
		srv, addr, err := start(cpus[i%len(cpus)], bin, args, serverEnv(o, o.env), listeningAddr, serverLogPath(o, name, i))
		if err != nil {
			sd.stop()
			return nil, fmt.Errorf("replica %d: %w", i, err)
		}
		sd.srvs = append(sd.srvs, srv)
		bases = append(bases, "http://"+addr)
		sd.metrics = append(sd.metrics, "http://"+addr+"/metrics")
	}
	base := bases[0] // provisioning goes through the first replica

	keys := map[string]string{} // scale tenant → api key
	for _, tp := range s.Tenants {
		var created struct {
			TenantID string `json:"tenant_id"`
			APIKey   string `json:"api_key"`
		}
		body := fmt.Sprintf(`{"name":%q,"tier":"enterprise"}`, tp.TenantID)
		if err := call(base+"/v1/admin/tenants", token, []byte(body), http.StatusCreated, &created); err != nil {
			sd.stop()
			return nil, fmt.Errorf("create tenant: %w", err)
		}
		keys[tp.TenantID] = created.APIKey
		for _, p := range tp.Policies {
			doc, err := json.Marshal(policyDocument(p))
			if err != nil {
				sd.stop()
				return nil, err
			}
			if err := call(base+"/v1/control/policies", created.APIKey, doc, http.StatusCreated, nil); err != nil {
				sd.stop()
				return nil, fmt.Errorf("create policy: %w", err)
			}
		}
	}
	if len(bases) > 1 {
		// Every replica enforces a write within 1 s (docs/api.md §A4); wait
		// that long so none is measured on a policy set still arriving.
		time.Sleep(time.Second)
	}
	sd.reqs = make([]request, len(s.Actions))
	for i, a := range s.Actions {
		body, err := json.Marshal(map[string]any{"action": a.Name, "params": a.Params, "agent_id": a.AgentID, "step_type": a.StepType})
		if err != nil {
			sd.stop()
			return nil, err
		}
		// Clients walk the corpus in order, so consecutive requests go to
		// consecutive replicas: round-robin.
		sd.reqs[i] = request{url: bases[i%len(bases)] + "/v1/actions", key: keys[a.TenantID], body: body}
	}
	return sd, nil
}

func startOPA(o options, s *scale.Scale) (*side, error) {
	version, err := opaVersion()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(o.work, "opa")
	build := exec.Command("go", "build", "-o", bin, "github.com/open-policy-agent/opa")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build opa %s: %w", version, err)
	}
	dir := filepath.Join(o.work, "opa-bundle")
	if err := writeBundleDir(dir, s); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// opa is one process: it gets every CPU the gatehouse replicas share.
	cpus := strings.ReplaceAll(o.serverCPUs, ";", ",")
	srv, _, err := start(cpus, bin, []string{"run", "--server", "--addr", addr, "--log-level", "error", "--bundle", dir}, serverEnv(o, nil), nil, serverLogPath(o, "opa", 0))
	if err != nil {
		return nil, err
	}
	sd := &side{name: "opa " + version, srvs: []*server{srv}, ok: func(b []byte) bool { return bytes.Contains(b, []byte(`"result"`)) }}
	if err := waitHealthy("http://"+addr+"/health", 60*time.Second); err != nil {
		sd.stop()
		return nil, err
	}
	sd.reqs = make([]request, len(s.Actions))
	for i, a := range s.Actions {
		body, err := json.Marshal(map[string]any{"input": engine.Input(a)})
		if err != nil {
			sd.stop()
			return nil, err
		}
		sd.reqs[i] = request{url: "http://" + addr + "/v1/data/gatehouse/decision/result", body: body}
	}
	return sd, nil
}

// writeBundleDir writes the library and the data document, every tenant's
// rules included, as an OPA bundle directory (what `gatehouse bundle
// build` ships in a tarball, for all the tenants at once).
func writeBundleDir(dir string, s *scale.Scale) error {
	files := library.Sources()
	// What a Gatehouse bundle holds (bundles.Build): the library and the
	// tenants' data, their rules included (policy as data), here for
	// every tenant in one data.json.
	tenants := map[string]any{}
	for i := range s.Tenants {
		tp := &s.Tenants[i]
		tenants[tp.TenantID] = adapter.TenantData(tp, "", true)
	}
	data, err := json.Marshal(map[string]any{adapter.Root: map[string]any{
		"config":  engine.Config{}.Defaults().ConfigData(),
		"tenants": tenants,
	}})
	if err != nil {
		return err
	}
	files["data.json"] = string(data)
	files[".manifest"] = `{"roots":["gatehouse"],"rego_version":1}`
	for p, src := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(src), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// drive runs o.concurrency closed-loop clients for d, each walking the
// corpus from its own offset.
// sample is one request of a segment: when it started, since the
// segment's start, and how long it took.
type sample struct{ start, latency time.Duration }

// drive runs o.concurrency closed-loop clients over reqs for d and returns
// the segment's figures and every request, client by client.
func drive(client *http.Client, o options, reqs []request, ok func([]byte) bool, d time.Duration) (result, [][]sample) {
	var wg sync.WaitGroup
	var errs atomic.Int64
	lat := make([][]sample, o.concurrency)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range o.concurrency {
		wg.Go(func() {
			for i := w * len(reqs) / o.concurrency; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if !do(client, reqs[i%len(reqs)], ok) {
					errs.Add(1)
				}
				lat[w] = append(lat[w], sample{t0.Sub(start), time.Since(t0)})
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, c := range lat {
		for _, x := range c {
			all = append(all, x.latency)
		}
	}
	slices.Sort(all)
	return result{
		Requests: len(all),
		Errors:   int(errs.Load()),
		RPS:      float64(len(all)) / elapsed.Seconds(),
		P50ms:    percentileMs(all, 0.50),
		P99ms:    percentileMs(all, 0.99),
		P999ms:   percentileMs(all, 0.999),
	}, lat
}

// percentileMs is the p-quantile of sorted (nearest rank below), in
// milliseconds; 0 for none.
func percentileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
}

// writeLatencyLog writes a segment's requests to path (its directory
// created), one line per request in the order of each client's requests:
// client, start and latency in µs, tab-separated, after a header line.
func writeLatencyLog(path string, lat [][]sample) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("client\tstart_us\tlatency_us\n")
	for c, xs := range lat {
		for _, x := range xs {
			fmt.Fprintf(&b, "%d\t%d\t%d\n", c, x.start.Microseconds(), x.latency.Microseconds())
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// profiler is `perf record -g` attached to the gatehouse processes during
// their measured segments only (warm-up and the other target's segments
// are left out): one file per segment, <base>.1, <base>.2, ... Read them
// with `perf report -i` or `perf script` (Go keeps frame pointers, so the
// call graphs are whole).
type profiler struct {
	base string
	pids []int
	n    int
	cmd  *exec.Cmd
	out  []string
}

func startPerf(base string, pids []int) (*profiler, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil, fmt.Errorf("-perf needs perf: %w", err)
	}
	return &profiler{base: base, pids: pids}, nil
}

func (p *profiler) resume() {
	p.n++
	out := fmt.Sprintf("%s.%d", p.base, p.n)
	ps := make([]string, len(p.pids))
	for i, pid := range p.pids {
		ps[i] = strconv.Itoa(pid)
	}
	p.cmd = exec.Command("perf", "record", "-F", "499", "-g", "-o", out, "-p", strings.Join(ps, ","))
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, io.Discard
	if err := p.cmd.Start(); err != nil {
		log.Printf("perf: %v", err)
		p.cmd = nil
		return
	}
	p.out = append(p.out, out)
}

func (p *profiler) pause() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func (p *profiler) stop() error {
	p.pause()
	log.Printf("perf profiles of the gatehouse segments: %s", strings.Join(p.out, " "))
	return nil
}

func do(client *http.Client, r request, ok func([]byte) bool) bool {
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	if r.key != "" {
		req.Header.Set("Authorization", "Bearer "+r.key)
	}
	resp, err := client.Do(req)
	if err != nil {
		logError(err.Error())
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode == http.StatusOK && ok(b) {
		return true
	}
	logError(fmt.Sprintf("%d %.200s", resp.StatusCode, b))
	return false
}

// errorsLogged bounds the failed requests logged: the first few say why.
var errorsLogged atomic.Int64

func logError(what string) {
	if errorsLogged.Add(1) <= 5 {
		log.Printf("request failed: %s", what)
	}
}

func call(url, key string, body []byte, want int, out any) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// policyDocument is a policy as the API takes it.
func policyDocument(p pdp.Policy) map[string]any {
	rules := make([]map[string]any, len(p.Rules))
	for i, r := range p.Rules {
		rule := map[string]any{"match": r.Match, "severity": r.Severity, "on_violation": r.OnViolation, "confidence": r.Confidence}
		if r.Reason != "" {
			rule["reason"] = r.Reason
		}
		if r.ContextRequires != "" {
			rule["context_requires"] = r.ContextRequires
		}
		rules[i] = rule
	}
	doc := map[string]any{"name": p.Name, "description": p.Description, "step_types": p.StepTypes, "rules": rules}
	if p.AgentID != "" {
		doc["agent_id"] = p.AgentID
	}
	if len(p.WhitelistedDomains) > 0 {
		doc["whitelisted_domains"] = p.WhitelistedDomains
	}
	return doc
}

// server is a started child process.
type server struct {
	cmd *exec.Cmd
	// logged is closed once the server's stderr has been read to its end
	// (and copied to its log, if any): after the process exits, and after
	// anything that inherited its stderr does.
	logged chan struct{}
}

// serverLogPath is where replica i of target keeps its stderr ("": none).
func serverLogPath(o options, target string, i int) string {
	if o.serverLog == "" {
		return ""
	}
	return filepath.Join(o.serverLog, fmt.Sprintf("%s.%d.log", target, i))
}

// start runs bin with args and env added to this process's environment,
// pinned to cpus when taskset exists; when addrFrom is set it reads the
// real listening address from stderr. With logPath set, stderr is also
// copied there, line by line.
func start(cpus, bin string, args, env []string, addrFrom func(line string) string, logPath string) (*server, string, error) {
	var logFile *os.File
	if logPath != "" {
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
			return nil, "", err
		}
		f, err := os.Create(logPath)
		if err != nil {
			return nil, "", err
		}
		logFile = f
	}
	name, argv := bin, args
	if cpus != "" {
		if ts, err := exec.LookPath("taskset"); err == nil {
			name, argv = ts, append([]string{"-c", cpus, bin}, args...)
		}
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = append(os.Environ(), env...)
	// A pipe of our own, not cmd.StderrPipe: Wait closes that one as soon
	// as the process exits, and lines still unread (a GC trace's last,
	// the test's) were lost with it.
	stderr, pw, err := os.Pipe()
	if err != nil {
		closeLog(logFile)
		return nil, "", err
	}
	cmd.Stderr = pw
	err = cmd.Start()
	pw.Close() // the child has its own copy
	if err != nil {
		stderr.Close()
		closeLog(logFile)
		return nil, "", err
	}
	srv := &server{cmd: cmd, logged: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(srv.logged)
		defer stderr.Close()
		defer closeLog(logFile)
		var w *bufio.Writer
		if logFile != nil {
			w = bufio.NewWriter(logFile)
			defer w.Flush()
		}
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if w != nil {
				w.Write(sc.Bytes())
				w.WriteByte('\n')
			}
			if addrFrom != nil {
				if a := addrFrom(sc.Text()); a != "" {
					select {
					case addr <- a:
					default:
					}
				}
			}
		}
	}()
	if addrFrom == nil {
		return srv, "", nil
	}
	select {
	case a := <-addr:
		if err := waitHealthy("http://"+a+"/health", 60*time.Second); err != nil {
			srv.stop()
			return nil, "", err
		}
		return srv, a, nil
	case <-time.After(60 * time.Second):
		srv.stop()
		return nil, "", errors.New("no listening line within 60s")
	}
}

func closeLog(f *os.File) {
	if f != nil {
		f.Close()
	}
}

func listeningAddr(line string) string {
	var l struct {
		Msg  string `json:"msg"`
		Addr string `json:"addr"`
	}
	if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "listening" {
		return l.Addr
	}
	return ""
}

// peakRSS reads the server's high-water resident set (VmHWM) in MiB.
func (s *server) peakRSS() float64 {
	pid := s.cmd.Process.Pid
	// Under taskset, the server is the exec'd image of the same pid.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	select { // its log complete, unless something else still holds its stderr
	case <-s.logged:
	case <-time.After(5 * time.Second):
	}
}

func waitHealthy(url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy within %s", url, within)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// opaVersion is the OPA version go.mod pins (library and CLI alike).
func opaVersion() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/open-policy-agent/opa").Output()
	if err != nil {
		return "", fmt.Errorf("go list opa: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
