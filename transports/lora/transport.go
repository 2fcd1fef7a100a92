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

	mu     sync.Mutex
	cur    *Link
	totals Counters // of the links that ended
}

// Counters are a transport's totals over every link it brought up, for
// metrics that must not restart with the modem.
type Counters struct {
	FramesIn, FramesOut uint64
	BytesIn, BytesOut   uint64
	// RxDropped: received packets the daemon did not take in time.
	RxDropped uint64
	// DecodeErrors: malformed bytes or frames from the modem.
	DecodeErrors uint64
	// ModemErrors by ERROR code (index 0 and 7: other codes).
	ModemErrors [8]uint64
	LinkCounters
}

func (c *Counters) add(l *Link) {
	s, ds, lc := l.Stats(), l.drv.Stats(), l.Counters()
	c.FramesIn += s.FramesIn
	c.FramesOut += s.FramesOut
	c.BytesIn += s.BytesIn
	c.BytesOut += s.BytesOut
	c.RxDropped += ds.RxDropped
	c.DecodeErrors += ds.DecodeErrors
	for i, v := range ds.ModemErrors {
		c.ModemErrors[i] += v
	}
	c.Deferred += lc.Deferred
	c.DeferredTime += lc.DeferredTime
	c.Refused += lc.Refused
	c.Failed += lc.Failed
}

// Counters returns the totals, the link that is up included.
func (t *Transport) Counters() Counters {
	t.mu.Lock()
	c, cur := t.totals, t.cur
	t.mu.Unlock()
	if cur != nil {
		c.add(cur)
	}
	return c
}

// Port is the modem's serial port.
func (t *Transport) Port() string { return t.svc.Port }

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
		go t.retire(l)
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

// retire adds an ended link's counters to the totals.
func (t *Transport) retire(l *Link) {
	<-l.Done()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.totals.add(l)
	if t.cur == l {
		t.cur = nil
	}
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
