package lora

import (
	"context"
	"errors"
	"fmt"
	"meshd.dev/meshd/transports/lora/loratest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/link/linktest"
)

// airPair starts two drivers on fake modems that hear each other: what one
// transmits, the other receives at -90 dBm, 7.5 dB SNR.
func airPair(t *testing.T, cfg Config) (a, b *Driver) {
	t.Helper()
	ma, ha := loratest.New()
	mb, hb := loratest.New()
	loratest.Air(-90, 7.5, ma, mb)
	go ma.Run()
	go mb.Run()
	var err error
	if a, err = Start(context.Background(), ha, cfg); err != nil {
		t.Fatal(err)
	}
	if b, err = Start(context.Background(), hb, cfg); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestLinkConformance runs the link contract's suite on two LoRa links
// sharing a fake air. The close tests expect the far end to learn of a
// close; on a shared medium there is no far end to tell (TestLinkClose
// covers closing instead).
func TestLinkConformance(t *testing.T) {
	linktest.Run(t, func(t *testing.T) (link.Link, link.Link) {
		if strings.Contains(t.Name(), "Close") {
			t.Skip("a shared radio medium has no peer to tell about a close")
		}
		cfg := testConfig()
		cfg.RxQueue = 1024 // the suite reads one direction only after the other
		a, b := airPair(t, cfg)
		return NewLink(a, LinkOptions{Name: "a"}), NewLink(b, LinkOptions{Name: "b"})
	}, linktest.Options{MaxBuffered: 2 * MTU})
}

func TestLinkClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := airPair(t, testConfig())
		la, lb := NewLink(a, LinkOptions{}), NewLink(b, LinkOptions{})
		defer lb.Close(nil)
		if err := la.Send(context.Background(), []byte("hi")); err != nil {
			t.Fatal(err)
		}
		<-la.TxDone()
		la.Close(nil)
		la.Close(nil)
		<-la.Done()
		if _, err := la.Recv(context.Background()); !errors.Is(err, link.ErrClosed) {
			t.Fatalf("Recv after close: %v", err)
		}
		if err := la.Send(context.Background(), []byte("x")); !errors.Is(err, link.ErrClosed) || !errors.Is(err, link.ErrLocalClose) {
			t.Fatalf("Send after close: %v", err)
		}
		f, err := lb.Recv(context.Background())
		if err != nil || string(f.Data) != "hi" || f.Radio == nil || f.Radio.RSSI != -90 || f.Radio.SNR != 7.5 {
			t.Fatalf("far end got %+v %v", f, err)
		}
	})
}

func TestLinkDownWhenModemVanishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLink(d, LinkOptions{})
		m.Conn.Close()
		<-l.Done()
		if !errors.Is(l.Err(), link.ErrClosed) || !errors.Is(l.Err(), ErrPort) {
			t.Fatalf("Err = %v, want ErrClosed and ErrPort", l.Err())
		}
		if _, err := l.Recv(context.Background()); !errors.Is(err, link.ErrClosed) {
			t.Fatalf("Recv = %v", err)
		}
	})
}

// fakeGate lets one frame per second through and refuses frames over 200
// bytes, recording what was sent.
type fakeGate struct {
	mu   sync.Mutex
	next time.Time
	sent []int
}

func (g *fakeGate) Admit(now time.Time, n int) (time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n > 200 {
		return time.Time{}, fmt.Errorf("over the dwell time: %d bytes", n)
	}
	if now.Before(g.next) {
		return g.next, nil
	}
	return now, nil
}

func (g *fakeGate) Record(start time.Time, n int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.next = start.Add(time.Second)
	g.sent = append(g.sent, n)
	return nil
}

func (g *fakeGate) Budget(time.Time) (time.Duration, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return time.Duration(len(g.sent)) * time.Millisecond, time.Minute
}

// TestLinkDefersForDutyCycle: frames the budget does not allow yet wait
// and go later; none is dropped.
func TestLinkDefersForDutyCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := airPair(t, testConfig())
		g := &fakeGate{}
		la, lb := NewLink(a, LinkOptions{Gate: g}), NewLink(b, LinkOptions{})
		defer la.Close(nil)
		defer lb.Close(nil)
		start := time.Now()
		for i := range 5 {
			if err := la.Send(context.Background(), []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			<-la.TxDone()
		}
		if el := time.Since(start); el != 4*time.Second {
			t.Fatalf("5 frames at one per second took %v", el)
		}
		for i := range 5 {
			f, err := lb.Recv(context.Background())
			if err != nil || f.Data[0] != byte(i) {
				t.Fatalf("frame %d: %v %v", i, f, err)
			}
		}
		c := la.Counters()
		if c.Deferred != 4 || c.DeferredTime != 4*time.Second {
			t.Fatalf("counters %+v", c)
		}
		if s := la.Stats(); s.FramesOut != 5 || s.Radio.AirtimeUsed != 5*time.Millisecond || s.Radio.AirtimeLeft != time.Minute {
			t.Fatalf("stats %+v radio %+v", s, s.Radio)
		}
	})
}

func TestLinkRefusedFrameIsCountedAndReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLink(d, LinkOptions{Gate: &fakeGate{}})
		defer l.Close(nil)
		if err := l.Send(context.Background(), make([]byte, 250)); err != nil {
			t.Fatal(err)
		}
		if n := <-l.TxDone(); n != 1 {
			t.Fatalf("TxDone %d", n)
		}
		if c := l.Counters(); c.Refused != 1 {
			t.Fatalf("counters %+v", c)
		}
		if s := l.Stats(); s.FramesOut != 0 {
			t.Fatalf("a refused frame was counted out: %+v", s)
		}
	})
}

// TestLinkSendDoesNotWaitForDutyCycle: the fragments of a large frame are
// handed over at once; Send takes them all while the gate defers them, and
// TxDone reports each when it went out.
func TestLinkSendDoesNotWaitForDutyCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := airPair(t, testConfig())
		la, lb := NewLink(a, LinkOptions{Gate: &fakeGate{}}), NewLink(b, LinkOptions{})
		defer la.Close(nil)
		defer lb.Close(nil)
		start := time.Now()
		for i := range 8 {
			if err := la.Send(context.Background(), []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		if el := time.Since(start); el != 0 {
			t.Fatalf("8 Sends took %v while the duty cycle defers", el)
		}
		if s := la.Stats(); s.QueueFrames == 0 {
			t.Fatalf("nothing queued: %+v", s)
		}
		done := 0
		for done < 8 {
			done += <-la.TxDone()
		}
		if el := time.Since(start); el != 7*time.Second {
			t.Fatalf("8 frames at one per second took %v", el)
		}
		for i := range 8 {
			if f, err := lb.Recv(context.Background()); err != nil || f.Data[0] != byte(i) {
				t.Fatalf("frame %d: %v %v", i, f, err)
			}
		}
	})
}
