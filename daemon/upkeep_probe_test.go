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

// TestSendSpaceOneProbe: once a good probe is stale, one send takes the
// probe and the sends meanwhile do not probe too; with no good probe
// (never probed, or the disk was low) every send probes.
func TestSendSpaceOneProbe(t *testing.T) {
	var s sendSpace
	t0 := 5 * time.Second
	if !s.mustProbe(t0) || !s.mustProbe(t0) {
		t.Fatal("a send without a good probe before it does not probe")
	}
	s.probed(true, t0)
	if s.mustProbe(t0 + sendProbeReuse - 1) {
		t.Error("a send probes while a good probe is fresh")
	}
	later := t0 + sendProbeReuse
	if !s.mustProbe(later) {
		t.Fatal("no send probes once the good probe is stale")
	}
	if s.mustProbe(later) || s.mustProbe(later+time.Microsecond) {
		t.Error("a second send probes while the first one's probe runs")
	}
	s.probed(false, later)
	if !s.mustProbe(later) || !s.mustProbe(later) {
		t.Error("a send after a probe that found the disk low does not probe")
	}
}
