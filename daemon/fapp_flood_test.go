package daemon

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
)

// TestFAPPAttackFloodOneSlot: an anonymous attacker fills one of a
// therapist node's slots with stamped requests. Before, the book took them
// all (up to 10,000, and then nothing more for a week); now the place
// keeps fapp.DefaultMaxPerPlace of them, the next one at the same stamp
// work is answered ABGELEHNT (counted as requests_busy), and an honest
// patient who spends one bit more gets in and pushes one of the flood out:
// declined, stored, counted (requests_pushed_out).
func TestFAPPAttackFloodOneSlot(t *testing.T) {
	noLeaks(t)
	clk := &testClock{}
	is := newIssuer(t)
	th, stop := startClocked(t, fappConfig(t, is), clk)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	becomeTherapist(t, ctx, th, is, clk)
	th.fapp.mu.Lock()
	slot := th.fapp.pub.Slots()[0]
	th.fapp.mu.Unlock()
	ref := slot.Ref(fapp.TherapistKeyOf(th.id.Compact()))
	attacker := fapp.NewPatientBook(fapp.PatientBookConfig{})
	var flood []fapp.RequestID
	for range fapp.DefaultMaxPerPlace + 1 {
		flood = append(flood, sendRequest(t, ctx, th, attacker, ref, slot.Start, clk.Now()).Request.ID)
	}
	if st := bookState(th, flood[len(flood)-1]); st != fapp.Abgelehnt {
		t.Errorf("a request beyond the place's quota at equal work is %v, want ABGELEHNT (answered)", st)
	}
	honest := fapp.NewPatientBook(fapp.PatientBookConfig{})
	r, sealed, err := honest.NewRequest(rand.Reader, th.id.Public(), ref, slot.Start,
		fapp.RequestOptions{StampBits: fapp.DefaultStampBits + 1}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	from := mustIdentity(t).Address()
	if err := th.call(ctx, func() { th.fapp.onDirect(from, append([]byte{toTherapist}, sealed...), 0) }); err != nil {
		t.Fatal(err)
	}
	if st := bookState(th, r.Request.ID); st != fapp.Angefragt {
		t.Fatalf("the honest request with one bit more is %v, want ANGEFRAGT", st)
	}
	out := flood[len(flood)-2] // the last of the flood that got in
	if st := bookState(th, out); st != fapp.Abgelehnt {
		t.Errorf("the flood's last request is %v, want ABGELEHNT (pushed out)", st)
	}
	v, err := th.st.FAPPGet(therapistResKey(out))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := decodeTherapistRes(v); err != nil || got.State != fapp.Abgelehnt {
		t.Errorf("stored record of the pushed-out request: %v %v", got.State, err)
	}
	st := th.fapp.stats.snapshot()
	if st["requests_busy"] != 1 || st["requests_pushed_out"] != 1 {
		t.Errorf("requests_busy %d, requests_pushed_out %d, want 1 and 1", st["requests_busy"], st["requests_pushed_out"])
	}
}
