package lora

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"meshd.dev/meshd/transports/link"
	"meshd.dev/meshd/transports/lora/kiss"
)

// MTU is the largest frame a LoRa link takes: one LoRa frame of 255 bytes
// less the modem's 1-byte header. The modem would take up to kiss.MTU (508)
// and split it over two LoRa frames, but a split packet is lost when either
// half is, holds the channel twice as long in one go, and cannot exceed a
// dwell limit any better; the engine's own fragmentation (with hop
// acknowledgements per fragment) does the job better.
const MTU = kiss.SingleMTU - kiss.HeaderLen

// LinkQueue bounds the frames a Link holds (at most LinkQueue x MTU bytes,
// 64 KiB): a full envelope's fragments.
const LinkQueue = 256

// Gate decides when a frame may go on the air: the daemon's duty-cycle
// ledger and dwell-time rule. A Transport keeps one Gate across replugs,
// so the hour's airtime survives a modem reset.
type Gate interface {
	// Admit returns the earliest time a frame of n bytes may start; now
	// if at once. An error means it may never go (longer than the dwell
	// time, or than the hour's whole budget).
	Admit(now time.Time, n int) (time.Time, error)
	// Record notes that a frame of n bytes started at start.
	Record(start time.Time, n int) error
	// Budget returns the airtime used in the hour before now and what the
	// duty cycle still allows.
	Budget(now time.Time) (used, left time.Duration)
}

// LinkCounters are the link's own counters beyond link.Stats.
type LinkCounters struct {
	// Deferred counts frames that waited for the duty cycle.
	Deferred uint64
	// DeferredTime is the total time frames waited for it.
	DeferredTime time.Duration
	// Refused counts frames the Gate refused outright (logged).
	Refused uint64
	// Failed counts frames lost because the modem failed while sending.
	Failed uint64
}

// Link is a LoRa modem as a link.Link: a shared medium with a window of
// one frame. Send queues the frame; a goroutine waits for the Gate (the
// frame is deferred, never dropped, while the duty cycle is spent), hands
// it to the driver and reports it on TxDone.
//
// The queue holds up to LinkQueue frames although the window is one: the
// routing engine hands over all fragments of a large frame at once, and
// Send must not keep the daemon's loop waiting while the duty cycle
// defers them (it would give up on the link after a second).
type Link struct {
	drv  *Driver
	info link.Info
	gate Gate

	txq    chan []byte
	txDone chan int
	done   chan struct{}

	mu        sync.Mutex
	err       error
	stats     link.Stats
	ctr       LinkCounters
	inFlight  int
	inBytes   int
	closeOnce sync.Once
}

// LinkOptions complete a Link's Info.
type LinkOptions struct {
	Name string
	// MTU lowers the link's MTU below MTU (a dwell-time limit); zero or
	// more than MTU means MTU.
	MTU       int
	Bitrate   int
	DutyCycle float64
	Gate      Gate // nil: no limit
}

// NewLink wraps a started driver.
func NewLink(d *Driver, o LinkOptions) *Link {
	mtu := MTU
	if o.MTU > 0 && o.MTU < MTU {
		mtu = o.MTU
	}
	l := &Link{
		drv: d, gate: o.Gate,
		info: link.Info{Kind: link.KindLoRa, Name: o.Name, MTU: mtu, Bitrate: o.Bitrate, Shared: true,
			Window: 1, HopAcks: true, DutyCycle: o.DutyCycle},
		txq:    make(chan []byte, LinkQueue),
		txDone: make(chan int, 1),
		done:   make(chan struct{}),
	}
	go l.sender()
	go l.watch()
	return l
}

// Info describes the link.
func (l *Link) Info() link.Info { return l.info }

// Driver returns the modem driver under the link.
func (l *Link) Driver() *Driver { return l.drv }

// TxDone reports frames that went on the air or were given up.
func (l *Link) TxDone() <-chan int { return l.txDone }

// Done is closed when the link is down.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err says why the link went down.
func (l *Link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Send queues one frame; it waits only while LinkQueue frames are queued.
func (l *Link) Send(ctx context.Context, frame []byte) error {
	if err := link.CheckFrame(frame, l.info.MTU); err != nil {
		return err
	}
	err := l.Err()
	if err != nil {
		return err
	}
	f := append([]byte(nil), frame...)
	l.mu.Lock()
	l.inFlight++ // before the sender can take it and count it done
	l.inBytes += len(f)
	l.mu.Unlock()
	select {
	case l.txq <- f:
		return nil
	case <-l.done:
		err = l.Err()
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	l.inFlight--
	l.inBytes -= len(f)
	l.mu.Unlock()
	return err
}

// Recv returns the next packet heard on the air, with its RSSI and SNR.
func (l *Link) Recv(ctx context.Context) (link.Frame, error) {
	select {
	case p, ok := <-l.drv.Packets():
		if !ok {
			<-l.done
			return link.Frame{}, l.Err()
		}
		f := link.Frame{Data: p.Data}
		l.mu.Lock()
		l.stats.FramesIn++
		l.stats.BytesIn += uint64(len(p.Data))
		l.mu.Unlock()
		if p.HasSignal {
			f.Radio = &link.Signal{RSSI: float64(p.RSSI), SNR: p.SNR}
		}
		return f, nil
	case <-ctx.Done():
		return link.Frame{}, ctx.Err()
	}
}

// Close takes the link down: the host leaves the modem and closes the port.
func (l *Link) Close(reason error) error {
	if reason == nil {
		reason = link.ErrLocalClose
	}
	l.setErr(reason)
	l.drv.Close()
	return nil
}

func (l *Link) setErr(reason error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", link.ErrClosed, reason)
	}
	l.mu.Unlock()
}

// watch ends the link when the driver ends.
func (l *Link) watch() {
	<-l.drv.Done()
	l.setErr(l.drv.Err())
	close(l.done)
}

// Stats returns the link's counters, with the radio's figures.
func (l *Link) Stats() link.Stats {
	l.mu.Lock()
	s := l.stats
	s.QueueFrames, s.QueueBytes = l.inFlight, l.inBytes
	l.mu.Unlock()
	ds := l.drv.Stats()
	r := &link.RadioStats{AirtimeLeft: time.Hour}
	if ds.HasSignal {
		r.Last = &link.Signal{RSSI: float64(ds.LastRSSI), SNR: ds.LastSNR}
	}
	if l.gate != nil {
		r.AirtimeUsed, r.AirtimeLeft = l.gate.Budget(time.Now())
	}
	s.Radio = r
	return s
}

// Counters returns the link's deferral and loss counters.
func (l *Link) Counters() LinkCounters {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ctr
}

// sender puts queued frames on the air one at a time.
func (l *Link) sender() {
	for {
		select {
		case f := <-l.txq:
			l.transmit(f)
			l.finish(len(f))
		case <-l.done:
			return
		}
	}
}

// finish reports one frame on TxDone, merging with an unread report.
func (l *Link) finish(size int) {
	l.mu.Lock()
	l.inFlight--
	l.inBytes -= size
	l.mu.Unlock()
	n := 1
	for {
		select {
		case l.txDone <- n:
			return
		default:
		}
		select {
		case m := <-l.txDone:
			n += m
		default:
		}
	}
}

// transmit waits for the gate and sends one frame.
func (l *Link) transmit(f []byte) {
	if !l.admit(len(f)) {
		return
	}
	start := time.Now()
	handed := false
	err := l.drv.send(context.Background(), f, func() {
		handed = true
		l.mu.Lock()
		l.stats.FramesOut++
		l.stats.BytesOut += uint64(len(f))
		l.mu.Unlock()
	})
	// A frame handed to the port may be on the air even if the modem
	// failed after: the ledger counts it (erring on the side of the
	// regulation).
	if handed && l.gate != nil {
		if rerr := l.gate.Record(start, len(f)); rerr != nil {
			l.drv.lim.warn("record", "lora: duty-cycle ledger refused a record", "err", rerr)
		}
	}
	if err != nil {
		l.count(func(c *LinkCounters) { c.Failed++ })
		if errors.Is(err, ErrQueueFull) {
			l.drv.lim.warn("queuefull", "lora: frame lost, the modem's queue was full", "err", err)
		}
		// Otherwise the driver ended; the link goes down with it and the
		// engine's custody keeps what the frame carried.
	}
}

// admit waits until the gate lets a frame of n bytes go. It returns false
// if the gate refuses it for good (counted and logged) or the link ends.
func (l *Link) admit(n int) bool {
	if l.gate == nil {
		return true
	}
	var waited time.Duration
	for {
		now := time.Now()
		at, err := l.gate.Admit(now, n)
		if err != nil {
			l.count(func(c *LinkCounters) { c.Refused++ })
			l.drv.lim.warn("refused", "lora: frame refused by the regional rules", "err", err, "bytes", n)
			return false
		}
		wait := at.Sub(now)
		if wait <= 0 {
			if waited > 0 {
				l.count(func(c *LinkCounters) { c.Deferred++; c.DeferredTime += waited })
				l.drv.lim.info("deferred", "lora: frames deferred by the duty cycle", "waited", waited.Round(time.Millisecond))
			}
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			waited += wait
		case <-l.done:
			t.Stop()
			return false
		}
	}
}

func (l *Link) count(f func(*LinkCounters)) {
	l.mu.Lock()
	f(&l.ctr)
	l.mu.Unlock()
}
