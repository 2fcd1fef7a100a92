package sim

import (
	"os"
	"testing"
)

// FuzzParse: any document and --set value is either a valid scenario or an
// ErrScenario, never a panic.
func FuzzParse(f *testing.F) {
	for _, p := range []string{quickstart, "testdata/small.toml", "testdata/dutycycle.toml", "testdata/partition.toml", "testdata/restart.toml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "radio.sf=10")
	}
	f.Add([]byte("duration = \"1m\"\n[[nodes]]\nname = \"a\"\nlora = true\n"), "seed=1")
	f.Fuzz(func(t *testing.T, doc []byte, set string) {
		sc, err := Parse(doc, []string{set})
		if err == nil {
			if err := sc.Validate(); err != nil {
				t.Fatalf("parsed scenario does not validate: %v", err)
			}
		}
	})
}
