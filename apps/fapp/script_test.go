package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// The scripts in testdata/script run fapp (this package's Main, in
// process).

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"fapp": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("MESHD_DATA_DIR", "") // never the developer's own node
			env.Setenv("LANG", "")
			return nil
		},
	})
}
