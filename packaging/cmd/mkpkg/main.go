// Mkpkg builds meshd's Debian (.deb) and OpenWrt (.ipk) packages with nfpm
// as a library, so that packaging needs only the Go toolchain: no
// downloaded binary, and the version pinned in packaging/go.mod.
//
// Usage (from the repository root; packaging/build.sh runs it):
//
//	go run ./cmd/mkpkg -config nfpm-deb.yaml -packager deb -o out/meshd_1.0_amd64.deb
//
// The configuration's ${VAR}s come from the environment (all must be set) (VERSION, GOARCH,
// BIN, IPK_ARCH); SOURCE_DATE_EPOCH sets the files' times, so the same
// commit gives the same package.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	_ "github.com/goreleaser/nfpm/v2/ipk" // registers the ipk packager
)

// errUsage is a wrong command line.
var errUsage = errors.New("mkpkg: usage: mkpkg -config FILE -packager deb|ipk -o OUT")

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkpkg", flag.ContinueOnError)
	config := fs.String("config", "", "nfpm configuration file")
	packager := fs.String("packager", "", "deb or ipk")
	out := fs.String("o", "", "package file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *config == "" || *out == "" || (*packager != "deb" && *packager != "ipk") || fs.NArg() > 0 {
		return errUsage
	}
	return build(*config, *packager, *out)
}

// build writes the package: parse (with the environment), fill in the
// packager's defaults, validate, then write to a temporary file that is
// renamed into place, so a failed build never leaves a truncated package.
func build(config, packager, out string) error {
	doc, err := os.ReadFile(config)
	if err != nil {
		return fmt.Errorf("mkpkg: %w", err)
	}
	// nfpm expands variables in a few fields only; the file names need
	// them too, so expand the whole file. A variable left unset is an
	// error, not an empty path.
	var unset []string
	text := os.Expand(string(doc), func(k string) string {
		v, ok := os.LookupEnv(k)
		if !ok {
			unset = append(unset, k)
		}
		return v
	})
	if len(unset) > 0 {
		return fmt.Errorf("mkpkg: %s: environment variables not set: %v", config, unset)
	}
	cfg, err := nfpm.Parse(strings.NewReader(text))
	if err != nil {
		return fmt.Errorf("mkpkg: %s: %w", config, err)
	}
	info, err := cfg.Get(packager)
	if err != nil {
		return fmt.Errorf("mkpkg: %s: %w", config, err)
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, packager); err != nil {
		return fmt.Errorf("mkpkg: %s: %w", config, err)
	}
	pkg, err := nfpm.Get(packager)
	if err != nil {
		return fmt.Errorf("mkpkg: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".mkpkg-*")
	if err != nil {
		return fmt.Errorf("mkpkg: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		return fmt.Errorf("mkpkg: %s package: %w", packager, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("mkpkg: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("mkpkg: %w", err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("mkpkg: %w", err)
	}
	return nil
}
