// Package console serves Gatehouse's web console at /console/: a sign-in
// page, then Policies, Playground, Approvals, Dashboard and Actions, all
// speaking the public API with the signed-in API key.
//
// The assets under static/ are the sources themselves — plain ES modules
// and one stylesheet, no framework, no build step, no third-party code —
// embedded with go:embed, so `go build` alone produces a binary that
// serves them and nothing is fetched from anywhere but this server. The
// charts are small hand-written SVG (static/js/chart.js): the dashboard
// needs bars and lines, not a charting library.
//
// Every response carries a strict Content-Security-Policy: scripts and
// styles from this origin only (no inline script or style), connections to
// this origin only, no frames, no forms posting elsewhere. The API key
// lives in the browser's sessionStorage, never in a URL, so it never
// reaches a log.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

//go:embed static
var assets embed.FS

// CSP is the Content-Security-Policy of every console response.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Register adds GET and HEAD /console and /console/*file to r.
//
// notFound answers a request for a file the console does not have; the
// API passes the function that builds its error envelope (one place builds
// every envelope).
func Register(r gin.IRoutes, notFound func(c *gin.Context, message string)) {
	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic("console: embedded assets missing: " + err.Error()) // a build defect, caught by every test
	}
	redirect := func(c *gin.Context) {
		c.Header("Content-Security-Policy", CSP)
		c.Redirect(http.StatusMovedPermanently, "/console/")
	}
	serve := func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// Assets change with the binary; revalidate rather than run a
		// stale script against a newer API.
		h.Set("Cache-Control", "no-cache")
		name := strings.TrimPrefix(path.Clean("/"+c.Param("file")), "/")
		if name == "" {
			name = "index.html"
		}
		if f, err := fs.Stat(static, name); err != nil || f.IsDir() {
			notFound(c, "No console file "+path.Join("/console", name))
			return
		}
		// ServeFileFS sets the type by extension and answers conditional
		// requests; it redirects only a path ending in /index.html.
		http.ServeFileFS(c.Writer, c.Request, static, name)
	}
	r.GET("/console", redirect)
	r.HEAD("/console", redirect)
	r.GET("/console/*file", serve)
	r.HEAD("/console/*file", serve)
}
