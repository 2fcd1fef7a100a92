// Package version is the one place meshd's version comes from: meshd,
// meshctl and the API's node.info all report String().
package version

import (
	"runtime/debug"
	"strings"
)

// Version is set by a release build with
//
//	go build -ldflags "-X meshd.dev/meshd/internal/version.Version=v0.1.0" ./daemon/cmd/meshd
//
// Without it, String falls back to what the Go toolchain recorded in the
// binary (the module version of `go install ...@v0.1.0`, or the VCS
// revision of a build in a checkout).
var Version = ""

// devel is reported when neither the linker nor the build info says more.
const devel = "devel"

// String returns the version of this binary.
func String() string {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, bi)
}

// resolve prefers the stamped version, then the module version, then the
// VCS revision ("devel+abc123def456", "-dirty" for uncommitted changes).
func resolve(stamped string, bi *debug.BuildInfo) string {
	if v := strings.TrimSpace(stamped); v != "" {
		return v
	}
	if bi == nil {
		return devel
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return devel
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return devel + "+" + rev + dirty
}
