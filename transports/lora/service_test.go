package lora

import (
	"context"
	"errors"
	"fmt"
	"io"
	"meshd.dev/meshd/transports/lora/loratest"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffJitteredAndCapped(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 30 * time.Second, Rand: func() float64 { return 0.999999 }}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for n, w := range want {
		got := b.Delay(n)
		if w *= time.Second; got > w || got < w-time.Millisecond {
			t.Errorf("Delay(%d) with top jitter = %v, want ~%v", n, got, w)
		}
	}
	b.Rand = func() float64 { return 0 }
	if got := b.Delay(3); got != 4*time.Second {
		t.Errorf("Delay(3) with bottom jitter = %v, want 4s (half of 8s)", got)
	}
	if got := b.Delay(1000); got != 15*time.Second {
		t.Errorf("Delay(1000) = %v, want half the cap", got)
	}
	if got := (Backoff{Rand: b.Rand}).Delay(1000); got != 15*time.Second {
		t.Errorf("default Delay(1000) = %v, want half of 30 s", got)
	}
}

// TestServiceSurvivesUnplug: the port is missing, appears, vanishes and
// returns; the link goes up, down and up again.
func TestServiceSurvivesUnplug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu     sync.Mutex
			modems []*loratest.Modem
			opens  int
			events []string
		)
		open := func(_ context.Context, path string) (io.ReadWriteCloser, error) {
			mu.Lock()
			defer mu.Unlock()
			opens++
			if opens == 1 || opens == 3 {
				return nil, fmt.Errorf("%w: open %s: no such file", ErrPort, path)
			}
			m, host := loratest.New()
			modems = append(modems, m)
			go m.Run()
			return host, nil
		}
		up := make(chan *Driver, 4)
		s := &Service{
			Port: "/dev/ttyUSB0", Config: testConfig(), Open: open,
			Backoff: Backoff{Min: time.Second, Max: 8 * time.Second, Rand: func() float64 { return 0 }},
			Up: func(d *Driver) {
				mu.Lock()
				events = append(events, "up")
				mu.Unlock()
				up <- d
			},
			Down: func(err error) {
				mu.Lock()
				events = append(events, "down")
				mu.Unlock()
			},
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		start := time.Now()
		go func() { done <- s.Run(ctx) }()

		d1 := <-up
		if el := time.Since(start); el != 500*time.Millisecond {
			t.Fatalf("first up after %v, want one backoff of 500ms", el)
		}
		if s.Driver() != d1 {
			t.Fatal("Driver() is not the running driver")
		}
		mu.Lock()
		modems[0].Conn.Close() // unplugged
		mu.Unlock()
		d2 := <-up
		if d2 == d1 {
			t.Fatal("same driver after replug")
		}
		if err := d2.Send(ctx, []byte{1, 2, 3}); err != nil {
			t.Fatalf("Send after replug: %v", err)
		}
		if !errors.Is(s.LastError(), ErrPort) || s.Restarts() != 3 {
			t.Fatalf("restarts %d, last error %v", s.Restarts(), s.LastError())
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(events) != "[up down up down]" {
			t.Fatalf("events %v", events)
		}
	})
}
