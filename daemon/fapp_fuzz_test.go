package daemon

import (
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
)

// FuzzDecodeQuery: a remote query from the query channel (outside input)
// never panics, and one that decodes encodes to the same bytes.
func FuzzDecodeQuery(f *testing.F) {
	for _, q := range []fapp.Query{{}, {PLZPrefix: "104", Verfahren: fapp.SetOf(fapp.Verhaltenstherapie), Limit: 5,
		Zeitfenster: []fapp.TimeWindow{{Tage: fapp.Werktage, Von: 17 * 60, Bis: 21 * 60}}, Sprachen: []fapp.Sprache{{'d', 'e'}},
		Fruehestens: time.Unix(1_800_000_000, 0)}} {
		b, err := encodeQuery(&q)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeQuery(b)
		if err != nil {
			return
		}
		if _, err := encodeQuery(&q); err != nil {
			t.Fatalf("decoded query does not encode: %v", err)
		}
	})
}

// FuzzParseAnswer: a remote answer's plaintext (from whoever sealed it to
// the reply key) never panics.
func FuzzParseAnswer(f *testing.F) {
	f.Add(padAnswer([]answerItem{{itemAnnounce, []byte{1, 2, 3}}, {itemProfile, []byte{4}}}))
	f.Add(padAnswer(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := parseAnswer(b)
		if err != nil {
			return
		}
		if got := padAnswer(items); len(got) > len(b) {
			t.Fatalf("%d items re-padded to %d bytes, from %d", len(items), len(got), len(b))
		}
	})
}
