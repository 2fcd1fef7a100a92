package fapp

import (
	"testing"
	"time"
)

// TestBookReceiveAfterCustody: a request that waited in custody while the
// therapist's node was offline (30 minutes, three stamp buckets; or six
// days) is judged at its own creation time, bounded by the request
// lifetime, not at arrival; one older than the lifetime is refused.
func TestBookReceiveAfterCustody(t *testing.T) {
	for _, wait := range []time.Duration{30 * time.Minute, 6 * 24 * time.Hour} {
		w := newResWorld(t)
		_, sealed := w.request(t, testNow)
		if r, err := w.book.Open(sealed, testNow.Add(wait)); err != nil || r.State != Angefragt {
			t.Fatalf("request after %v in custody: %+v %v", wait, r, err)
		}
	}
	w := newResWorld(t)
	_, sealed := w.request(t, testNow)
	if _, err := w.book.Open(sealed, testNow.Add(DefaultRequestTTL+time.Hour)); err == nil {
		t.Fatal("a request older than its lifetime was accepted")
	}
}
