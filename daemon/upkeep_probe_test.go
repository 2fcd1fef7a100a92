package daemon

import (
	"testing"
	"time"
)

// TestSendSpaceReuse: a probe that found room answers for the sends of
// the next millisecond only; a probe that found the disk low answers for
// none (every send probes again until there is room).
func TestSendSpaceReuse(t *testing.T) {
	var s sendSpace
	t0 := 5 * time.Second
	if s.fresh(t0) {
		t.Fatal("fresh before any probe")
	}
	s.probed(true, t0)
	if !s.fresh(t0) || !s.fresh(t0+sendProbeReuse-1) {
		t.Error("a good probe does not answer for the next millisecond")
	}
	if s.fresh(t0+sendProbeReuse) || s.fresh(t0-1) {
		t.Error("a good probe answers outside its millisecond")
	}
	s.probed(false, t0)
	if s.fresh(t0) {
		t.Error("a probe that found the disk low answers for later sends")
	}
}
