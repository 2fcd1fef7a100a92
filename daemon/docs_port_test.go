package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAPIDocsUseDefaultPort keeps the API documentation's examples on the
// port meshd really listens on: pasted examples on another port are refused.
func TestAPIDocsUseDefaultPort(t *testing.T) {
	url := regexp.MustCompile(`(?:http|ws)://(?:127\.0\.0\.1|localhost):(\d+)`)
	_, want, _ := strings.Cut(DefaultAPIAddr, ":")
	files := []string{"../docs/api.md", "../rpcapi/README.md", "../rpcapi/docs_gen.go", "../rpcapi/doc.go"}
	gen, _ := filepath.Glob("../rpcapi/*.go")
	for _, f := range gen {
		if !strings.HasSuffix(f, "_test.go") {
			files = append(files, f)
		}
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range url.FindAllSubmatch(b, -1) {
			seen++
			if string(m[1]) != want {
				t.Errorf("%s: example URL %s, but the default API port is %s", f, m[0], want)
			}
		}
	}
	if seen == 0 {
		t.Error("no example URLs found in the API docs; did they move?")
	}
}
