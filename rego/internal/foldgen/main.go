// Command foldgen writes rego/gatehouse/fold.rego, the case-folding table of
// the Rego library, from adapter.FoldTableRego (run by go generate ./rego).
package main

import (
	"log"
	"os"

	"github.com/gatehouse-pdp/gatehouse/adapter"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: foldgen OUTPUT")
	}
	if err := os.WriteFile(os.Args[1], []byte(adapter.FoldTableRego()), 0o644); err != nil {
		log.Fatal(err)
	}
}
