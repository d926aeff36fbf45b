package api

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gatehouse-pdp/gatehouse/pdp"
	"github.com/gatehouse-pdp/gatehouse/pdp/registry"
	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// GET /v1/audit/export (docs/api.md §A10): the tenant's chain, or a window
// of it, in chain order as CSV (the default), a JSON array or JSON lines,
// streamed from the store one entry at a time, so memory does not grow
// with the chain (README "Audit export" has the figures).

// exportTimeout bounds one export; its write deadline is extended to it.
const exportTimeout = 30 * time.Minute

// exportFormats maps format to its content type.
var exportFormats = map[string]string{
	"csv":   "text/csv; charset=utf-8",
	"json":  "application/json",
	"jsonl": "application/x-ndjson",
}

// exportColumns are the CSV columns: Novyx's five, then the chain's.
var exportColumns = []string{"timestamp", "operation", "agent_id", "artifact_id", "content_hash",
	"sequence_number", "event", "prev_hash", "entry_hash", "metadata"}

func (s *server) exportAudit(c *gin.Context) {
	t := tenant(c)
	if err := registry.RequireFeature(t.Tier, registry.FeatureAuditExport); err != nil {
		fail(c, err)
		return
	}
	archive, ok := store.Archive(s.gov.st)
	if !ok {
		fail(c, newError(http.StatusNotImplemented, pdp.CodeGovernanceUnavailable, "The %s store cannot export its audit chain", s.st.Backend()))
		return
	}
	var es pdp.ValidationErrors
	format := c.Query("format")
	if format == "" {
		format = "csv"
	}
	ctype, known := exportFormats[format]
	if !known {
		es = append(es, &pdp.ValidationError{Field: "format", Reason: "must be csv, json or jsonl (got " + strconv.Quote(truncate(format, 32)) + ")"})
	}
	since := queryTime(c, "since", &es)
	until := queryTime(c, "until", &es)
	checkWindow(since, until, &es)
	events := queryEvents(c, &es)
	if err := es.Err(); err != nil {
		fail(c, err)
		return
	}
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetWriteDeadline(time.Now().Add(exportTimeout)) // not every writer has one
	ctx, cancel := context.WithTimeout(c.Request.Context(), exportTimeout)
	defer cancel()

	w := bufio.NewWriterSize(c.Writer, 64<<10)
	enc := newEntryEncoder(format, w)
	started := false
	err := archive.ExportAudit(ctx, t.ID, store.AuditQuery{Since: since, Until: until, EventTypes: events}, func(e store.AuditEntry) error {
		if !started {
			started = true
			s.startExport(c, ctype, format)
			if err := enc.begin(); err != nil {
				return err
			}
		}
		return enc.entry(viewEntry(e))
	})
	if err != nil && !started {
		fail(c, err) // nothing sent yet: a proper error
		return
	}
	if err != nil {
		// Headers are gone: cut the stream short so the client sees a
		// truncated body (no closing bracket, a CSV without its last
		// line) rather than a complete-looking one.
		s.log.ErrorContext(c.Request.Context(), "audit export failed midway", "tenant_id", t.ID, "error", err)
		_ = w.Flush()
		panic(http.ErrAbortHandler)
	}
	if !started {
		s.startExport(c, ctype, format)
		_ = enc.begin()
	}
	_ = enc.end()
	_ = w.Flush()
}

// startExport writes the export's status and headers.
func (s *server) startExport(c *gin.Context, ctype, format string) {
	c.Header("Content-Type", ctype)
	c.Header("Content-Disposition", `attachment; filename="audit.`+format+`"`)
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
}

// entryEncoder writes entries in one format.
type entryEncoder struct {
	format string
	w      *bufio.Writer
	csv    *csv.Writer
	n      int
	buf    []byte
}

func newEntryEncoder(format string, w *bufio.Writer) *entryEncoder {
	e := &entryEncoder{format: format, w: w}
	if format == "csv" {
		e.csv = csv.NewWriter(w)
	}
	return e
}

func (e *entryEncoder) begin() error {
	switch e.format {
	case "csv":
		return e.csv.Write(exportColumns)
	case "json":
		return e.w.WriteByte('[')
	}
	return nil
}

func (e *entryEncoder) entry(v entryView) error {
	e.n++
	if e.format == "csv" {
		meta, _ := v.Metadata.(json.RawMessage)
		if len(meta) == 0 {
			meta = json.RawMessage("{}")
		}
		row := [...]string{v.Timestamp, v.Operation, deref(v.AgentID), deref(v.ArtifactID), v.ContentHash,
			strconv.FormatInt(v.SequenceNumber, 10), v.Event, v.PrevHash, v.EntryHash, string(meta)}
		for i := range row {
			row[i] = csvCell(row[i])
		}
		return e.csv.Write(row[:])
	}
	b, err := encodeJSON(v)
	if err != nil {
		return err
	}
	if e.format == "json" && e.n > 1 {
		if err := e.w.WriteByte(','); err != nil {
			return err
		}
	}
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	if e.format == "jsonl" {
		return e.w.WriteByte('\n')
	}
	return nil
}

// csvCell is s as a CSV export's cell. A spreadsheet opening the export
// would run a cell that begins with =, +, -, @, a tab or a carriage
// return as a formula (CSV injection: an agent_id such as
// =HYPERLINK(...) is a caller's text), so such a cell is written after a
// single quote, which spreadsheets show as text; so is one that begins
// with a single quote itself, so that reading the export back is exact:
// a cell that begins with ' is the value after that quote, any other is
// the value. Only the CSV format does this; json and jsonl carry the
// values as they are.
func csvCell(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r'", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

func (e *entryEncoder) end() error {
	switch e.format {
	case "csv":
		e.csv.Flush()
		return e.csv.Error()
	case "json":
		return e.w.WriteByte(']')
	}
	return nil
}
