package tomlerr

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestDescribe(t *testing.T) {
	type cfg struct {
		A int `toml:"a"`
		B struct {
			C string `toml:"c"`
		} `toml:"b"`
	}
	decode := func(doc string) error {
		var c cfg
		d := toml.NewDecoder(bytes.NewReader([]byte(doc)))
		d.DisallowUnknownFields()
		return d.Decode(&c)
	}
	for _, tc := range []struct{ doc, want string }{
		{"a = 1\n[b]\nd = 2\n", `line 3, column 1: unknown field "b.d"`},
		{"a = \"x\"\n", `line 1, column 5`},
		{"a = \n", `line 1`},
	} {
		got := Describe(decode(tc.doc))
		if !strings.Contains(got, tc.want) {
			t.Errorf("%q: got %q, want it to contain %q", tc.doc, got, tc.want)
		}
	}
	if got := Describe(errors.New("plain")); got != "plain" {
		t.Errorf("plain error: %q", got)
	}
}
