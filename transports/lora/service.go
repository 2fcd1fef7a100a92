package lora

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff is the reopen schedule of a Service: the n-th consecutive
// failure waits a random time in [d/2, d] with d = min(Min * 2^n, Max), so
// several daemons on one hub do not retry in step.
type Backoff struct {
	// Min and Max: zero means 1 s and 30 s.
	Min, Max time.Duration
	// Rand returns a number in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

// Delay returns the wait after the n-th consecutive failure (n >= 0).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// Opener opens the modem's port.
type Opener func(ctx context.Context, path string) (io.ReadWriteCloser, error)

// Service keeps a modem link up: it opens Port, starts a driver, and when
// the driver ends (unplugged, reset, hung, mismatched) it reopens the port
// with Backoff, until ctx ends.
type Service struct {
	Port    string
	Config  Config
	Open    Opener // nil means OpenSerial
	Backoff Backoff
	// Stable: a driver that ran this long resets the backoff. Zero means
	// one minute.
	Stable time.Duration
	// Up is called with each driver that started; Down when it ended.
	// Both run on the Service's goroutine: a slow callback delays reopening.
	Up   func(*Driver)
	Down func(error)

	mu       sync.Mutex
	cur      *Driver
	restarts uint64
	lastErr  error
}

// Driver returns the running driver, or nil while the link is down.
func (s *Service) Driver() *Driver {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Restarts counts drivers that ended (or failed to start) and were retried.
func (s *Service) Restarts() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// LastError returns why the link last went down or failed to come up.
func (s *Service) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Run supervises the link until ctx ends, then closes the driver and
// returns ctx's error.
func (s *Service) Run(ctx context.Context) error {
	log := s.Config.Logger
	if log == nil {
		log = slog.Default()
	}
	stable := s.Stable
	if stable <= 0 {
		stable = time.Minute
	}
	failures := 0
	for {
		began := time.Now()
		err := s.once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(began) >= stable {
			failures = 0
		}
		wait := s.Backoff.Delay(failures)
		failures++
		s.mu.Lock()
		s.restarts++
		s.lastErr = err
		s.mu.Unlock()
		log.Warn("lora: modem link down, reopening", "port", s.Port, "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// once opens the port and runs one driver to its end.
func (s *Service) once(ctx context.Context) error {
	open := s.Open
	if open == nil {
		open = OpenSerial
	}
	port, err := open(ctx, s.Port)
	if err != nil {
		return err
	}
	cfg := s.Config
	if cfg.Name == "" {
		cfg.Name = s.Port
	}
	d, err := Start(ctx, port, cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.cur = d
	s.mu.Unlock()
	if s.Up != nil {
		s.Up(d)
	}
	select {
	case <-d.Done():
		err = d.Err()
	case <-ctx.Done():
		d.Close()
		err = ctx.Err()
	}
	s.mu.Lock()
	s.cur = nil
	s.mu.Unlock()
	if s.Down != nil {
		s.Down(err)
	}
	if err == nil || errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: closed", ErrLinkDown)
	}
	return err
}
