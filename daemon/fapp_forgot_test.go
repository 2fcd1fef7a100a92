package daemon

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"meshd.dev/meshd/fapp"
)

// TestFAPPForgotUntilSurvivesRestart: the therapist's book forgets the
// finished reservations of the oldest requests beyond its bound, and the
// node deletes them from the store (Sweep); the stamp verifier, which
// remembers their stamps as spent, is not stored. A restart then took a
// replay of a forgotten request as new. The node stores the book's
// ForgotUntil with the deletions and gives it back at start, so the book
// refuses such a replay after a restart too.
func TestFAPPForgotUntilSurvivesRestart(t *testing.T) {
	clk := &testClock{}
	is := newIssuer(t)
	cfg := fappConfig(t, is, "10")
	n, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := n.fapp
	f.mu.Lock()
	// A book with room for one finished reservation, so that two forget one.
	book, err := fapp.NewBook(fapp.BookConfig{Identity: n.id, MaxReservations: 1,
		Stamps: fapp.NewStampVerifier(fapp.StampConfig{MinBits: 8})})
	if err != nil {
		f.mu.Unlock()
		t.Fatal(err)
	}
	f.book = book
	f.mu.Unlock()
	pat := fapp.NewPatientBook(fapp.PatientBookConfig{StampBits: 8})
	ref := fapp.SlotRef{Therapist: fapp.TherapistKeyOf(n.id.Compact()), Slot: 1}
	now := clk.Now()
	var first fapp.Request
	for i := range 2 {
		at := now.Add(time.Duration(i) * time.Second)
		pr, _, err := pat.NewRequest(rand.Reader, n.id.Public(), ref, at.Add(48*time.Hour), fapp.RequestOptions{}, at)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = pr.Request
		}
		f.mu.Lock()
		_, _, err = f.book.Refuse(&pr.Request, pr.Request.Patient.Compact(), "", at)
		f.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	f.forgetLocked(now.Add(2 * time.Second))
	want := f.book.ForgotUntil()
	f.mu.Unlock()
	if !want.Equal(first.Created) {
		t.Fatalf("ForgotUntil %v, want the forgotten request's creation %v", want, first.Created)
	}
	n.Close()
	n2, err := Open(context.Background(), cfg, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	n2.fapp.mu.Lock()
	got := n2.fapp.book.ForgotUntil()
	n2.fapp.mu.Unlock()
	if !got.Equal(want) {
		t.Errorf("ForgotUntil after a restart: %v, want %v", got, want)
	}
}
