// Package docs holds the OpenAPI 3.1 description of Gatehouse's HTTP API
// (openapi.yaml), embedded so that the server can serve it at
// GET /openapi.json and the e2e suite can check every request and response
// against the very document users read. It lives beside the YAML because
// go:embed cannot reach into a parent directory.
package docs

import (
	_ "embed"
	"fmt"

	"sigs.k8s.io/yaml"
)

// OpenAPIYAML is docs/openapi.yaml as written.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// OpenAPIJSON returns the document converted to JSON, the form served at
// GET /openapi.json. Callers convert once (at startup) and keep the bytes.
func OpenAPIJSON() ([]byte, error) {
	b, err := yaml.YAMLToJSON(OpenAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("docs: openapi.yaml: %w", err)
	}
	return b, nil
}
