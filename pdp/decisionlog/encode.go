package decisionlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// The worker writes each event by hand rather than with encoding/json:
// the input's params and the result arrive already encoded by the API,
// and encoding/json would re-scan and re-compact them (a json.Marshaler's
// output and a RawMessage are both compacted again), allocating dozens of
// times per event. Here each embedded document is checked once with
// json.Valid and copied; the output is what encoding/json would write for
// Event (TestAppendEventMatchesEncodingJSON holds the two together).

var errInvalidJSON = errors.New("not valid JSON")

// appendEvent appends ev as one JSON object (no newline); labels is the
// encoded labels object.
func appendEvent(b []byte, labels []byte, ev *Event) ([]byte, error) {
	b = append(b, `{"labels":`...)
	b = append(b, labels...)
	b = append(b, `,"decision_id":`...)
	b = appendString(b, ev.DecisionID)
	if ev.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendString(b, ev.TraceID)
	}
	if ev.SpanID != "" {
		b = append(b, `,"span_id":`...)
		b = appendString(b, ev.SpanID)
	}
	b = append(b, `,"path":`...)
	b = appendString(b, ev.Path)
	var err error
	if ev.Input != nil {
		b = append(b, `,"input":`...)
		if b, err = appendDocument(b, ev.Input); err != nil {
			return nil, errors.Join(errors.New("input"), err)
		}
	}
	if ev.Result != nil {
		b = append(b, `,"result":`...)
		if b, err = appendDocument(b, ev.Result); err != nil {
			return nil, errors.Join(errors.New("result"), err)
		}
	}
	if len(ev.Erased) > 0 {
		b = append(b, `,"erased":[`...)
		for i, p := range ev.Erased {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	if ev.RequestedBy != "" {
		b = append(b, `,"requested_by":`...)
		b = appendString(b, ev.RequestedBy)
	}
	b = append(b, `,"timestamp":"`...)
	b = ev.Timestamp.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if len(ev.RuleLabels) > 0 {
		b = append(b, `,"rule_labels":[`...)
		for i, l := range ev.RuleLabels {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"policy":`...)
			b = appendString(b, l.Policy)
			b = append(b, `,"scope":`...)
			b = appendString(b, string(l.Scope))
			b = append(b, `,"rule":`...)
			b = strconv.AppendInt(b, int64(l.Rule), 10)
			b = append(b, `,"severity":`...)
			b = appendString(b, string(l.Severity))
			b = append(b, `,"on_violation":`...)
			b = appendString(b, string(l.OnViolation))
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if tenant, ok := ev.Custom["tenant_id"].(string); ok && len(ev.Custom) == 1 {
		b = append(b, `,"custom":{"tenant_id":`...)
		b = appendString(b, tenant)
		b = append(b, '}')
	} else if len(ev.Custom) > 0 {
		b = append(b, `,"custom":`...)
		if b, err = appendDocument(b, ev.Custom); err != nil {
			return nil, errors.Join(errors.New("custom"), err)
		}
	}
	return append(b, '}'), nil
}

// appendDocument appends an input or result document: an encoded one is
// checked and copied, an ActionInput written from its parts, anything
// else encoded.
func appendDocument(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case json.RawMessage:
		return appendRaw(b, x)
	case ActionInput:
		return x.appendJSON(b)
	}
	raw, err := marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, raw...), nil
}

// appendRaw copies encoded JSON after checking it, so one bad document
// can never make a whole file or batch unreadable.
func appendRaw(b []byte, raw []byte) ([]byte, error) {
	if !json.Valid(raw) {
		return nil, errInvalidJSON
	}
	return append(b, raw...), nil
}

// appendJSON writes the input document as MarshalJSON does.
func (a ActionInput) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"action":`...)
	b = appendString(b, a.Action)
	b = append(b, `,"agent_id":`...)
	if a.AgentID == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, a.AgentID)
	}
	b = append(b, `,"params":`...)
	if len(bytes.TrimSpace(a.Params)) == 0 {
		b = append(b, "{}"...)
	} else {
		var err error
		if b, err = appendRaw(b, a.Params); err != nil {
			return nil, errors.Join(errors.New("params"), err)
		}
	}
	step := a.StepType
	if step == "" {
		step = pdp.DefaultStepType
	}
	b = append(b, `,"step_type":`...)
	b = appendString(b, step)
	b = append(b, `,"tenant_id":`...)
	b = appendString(b, a.TenantID)
	return append(b, '}'), nil
}

// appendString appends s as a JSON string. Plain printable ASCII, what ids,
// names and addresses are, is copied; anything else is left to
// encoding/json (without HTML escaping, as every event is written).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return appendStringSlow(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStringSlow(b []byte, s string) []byte {
	raw, _ := marshal(s) // a string always encodes (invalid UTF-8 as \ufffd)
	return append(b, raw...)
}
