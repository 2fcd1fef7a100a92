package main

import (
	"bytes"
	"os"
	"testing"
)

// TestTableUpToDate regenerates fapp's PLZ table from the committed list and
// compares it with the committed file, so neither can change alone.
func TestTableUpToDate(t *testing.T) {
	raw, err := os.ReadFile("german-postal-codes-2.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(raw, "german-postal-codes-2.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../fapp/plz_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("fapp/plz_table.go is stale: run go generate ./fapp")
	}
}

func TestGenerateRefusesBadInput(t *testing.T) {
	for _, in := range []string{`["1234"]`, `["123456"]`, `["1234a"]`, `{"a":1}`, `["-1234"]`} {
		if _, err := generate([]byte(in), "test"); err == nil {
			t.Fatalf("%s accepted", in)
		}
	}
}
