package docs

import (
	"encoding/json"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIDocumentIsValid loads the served JSON form with kin-openapi,
// as the e2e suite does, and validates it as an OpenAPI 3.1 document.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	b, err := OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("OpenAPIJSON is not a JSON object: %v", err)
	}
	if v["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v, want 3.1.0", v["openapi"])
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatal("kin-openapi does not read the document as OpenAPI 3.1")
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	// Every operation has an id (the Go client and readers refer to them)
	// and documents its failures.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s: no operationId", method, path)
			}
			if op.Responses.Len() == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
		}
	}
}
