package lora

import (
	"context"
	"sync"

	"meshd.dev/meshd/transports/link"
)

// TransportOptions configure a Transport.
type TransportOptions struct {
	Port    string
	Config  Config
	Open    Opener // nil: OpenSerial
	Backoff Backoff
	// Gate is the duty-cycle ledger and dwell rule; nil: none. It is kept
	// across replugs.
	Gate      Gate
	Bitrate   int
	DutyCycle float64
	// MTU lowers the links' MTU (see LinkOptions.MTU).
	MTU int
}

// Transport is one modem as a link.Transport: each time the modem comes up
// (first start, after a replug or reset) it delivers a new Link; the old
// one is down by then.
type Transport struct {
	svc    *Service
	links  chan link.Link
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	cur *Link
}

// NewTransport starts supervising the modem on o.Port.
func NewTransport(o TransportOptions) (*Transport, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{links: make(chan link.Link), cancel: cancel, done: make(chan struct{})}
	t.svc = &Service{Port: o.Port, Config: o.Config, Open: o.Open, Backoff: o.Backoff}
	t.svc.Up = func(d *Driver) {
		l := NewLink(d, LinkOptions{Name: o.Port, Bitrate: o.Bitrate, DutyCycle: o.DutyCycle, Gate: o.Gate, MTU: o.MTU})
		t.mu.Lock()
		t.cur = l
		t.mu.Unlock()
		select {
		case t.links <- l:
		case <-ctx.Done():
			l.Close(nil)
		case <-d.Done():
		}
	}
	go func() {
		defer close(t.done)
		defer close(t.links)
		_ = t.svc.Run(ctx)
	}()
	return t, nil
}

// Links delivers the link each time the modem comes up.
func (t *Transport) Links() <-chan link.Link { return t.links }

// Service returns the supervisor (restarts, last error).
func (t *Transport) Service() *Service { return t.svc }

// Current returns the link that is up, or nil.
func (t *Transport) Current() *Link {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && t.cur.Err() != nil {
		return nil
	}
	return t.cur
}

// Close stops supervising and takes the link down.
func (t *Transport) Close() error {
	t.cancel()
	<-t.done
	return nil
}
