package lora

import (
	"context"
	"fmt"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// readyQuery asks whether the modem's queue has room; the firmware answers
// READY 0x01 or 0x00 (it never sends READY unasked).
var readyQuery = []byte{kiss.FEND, kiss.CmdReady, 0x00, kiss.FEND}

// Send hands one packet (1..kiss.MTU bytes) to the modem and returns when
// the modem is ready for the next: after the packet's airtime, when it
// answers READY 0x01. Calls are serialised (a window of one frame). A
// modem that says its queue is full is asked again every ReadyPoll for up
// to TxTimeout; one that does not answer within ReplyTimeout (plus the
// airtime of what it may still be sending, see txBacklog) ends the driver. If ctx ends while waiting, the packet may still be sent.
func (d *Driver) Send(ctx context.Context, payload []byte) error {
	return d.send(ctx, payload, nil)
}

// send is Send; handed, if not nil, is called as the DATA frame goes to
// the port (before the write returns: the far end may hear it first). A
// driver that is already down does not call it.
func (d *Driver) send(ctx context.Context, payload []byte, handed func()) error {
	if len(payload) == 0 || len(payload) > kiss.MTU {
		return fmt.Errorf("%w: %d bytes not in 1..%d", ErrFrameSize, len(payload), kiss.MTU)
	}
	d.txMu.Lock()
	defer d.txMu.Unlock()
	d.mu.Lock()
	ok := d.configured
	d.mu.Unlock()
	if !ok {
		return ErrNotConfigured
	}
	d.drainTx()
	if d.Err() != nil {
		return d.err
	}
	d.count(func(s *Stats) { s.TxFrames++; s.TxBytes += uint64(len(payload)) })
	if handed != nil {
		handed()
	}
	d.noteHandover(len(payload))
	if err := d.write(kiss.CmdData, payload); err != nil {
		return err
	}
	if d.cfg.Airtime != nil {
		if err := d.sleep(ctx, d.cfg.Airtime(len(payload))); err != nil {
			return err
		}
	}
	return d.awaitReady(ctx)
}

// drainTx forgets READY answers and queue errors from before this frame.
func (d *Driver) drainTx() {
	for {
		select {
		case <-d.ready:
		case <-d.txErr:
		default:
			return
		}
	}
}

func (d *Driver) sleep(ctx context.Context, dur time.Duration) error {
	if dur <= 0 {
		return nil
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-d.done:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awaitReady asks READY until the modem has room.
func (d *Driver) awaitReady(ctx context.Context) error {
	give := time.NewTimer(d.cfg.TxTimeout)
	defer give.Stop()
	for {
		if err := d.writeRaw(readyQuery); err != nil {
			return err
		}
		ans, err := d.readyAnswer(ctx)
		if err != nil {
			return err
		}
		if ans == kiss.ReadyYes {
			return nil
		}
		d.count(func(s *Stats) { s.ReadyNo++ })
		poll := time.NewTimer(d.cfg.ReadyPoll)
		select {
		case <-poll.C:
		case <-give.C:
			poll.Stop()
			err := fmt.Errorf("%w: the modem's queue stayed full for %v", ErrNoAnswer, d.cfg.TxTimeout)
			d.fail(err)
			return err
		case <-d.done:
			poll.Stop()
			return d.err
		case <-ctx.Done():
			poll.Stop()
			return ctx.Err()
		}
	}
}

// readyAnswer waits for a READY answer or a queue error: ReplyTimeout
// plus the time the modem may spend sending what it holds (txBacklog).
func (d *Driver) readyAnswer(ctx context.Context) (byte, error) {
	wait := d.cfg.ReplyTimeout + d.txBacklog()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a := <-d.ready:
		return a, nil
	case err := <-d.txErr:
		return 0, err
	case <-t.C:
		err := fmt.Errorf("%w: no READY answer within %v", ErrNoAnswer, wait.Round(time.Millisecond))
		d.fail(err)
		return 0, err
	case <-d.done:
		return 0, d.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// handover is one DATA frame given to the modem and what sending it may
// cost the modem (airtime plus channel access).
type handover struct {
	at   time.Time
	cost time.Duration
}

// noteHandover records a DATA frame of n bytes going to the modem; txMu
// is held.
func (d *Driver) noteHandover(n int) {
	var air time.Duration
	if d.cfg.Airtime != nil {
		air = d.cfg.Airtime(n)
	}
	d.sent = append(d.sent, handover{at: time.Now(), cost: air + d.accessWait()})
}

// txBacklog is how long the modem may stay deaf to the serial line while
// it sends frames it holds. READY 0x01 means its queue has room, not that
// it is empty: while it waits for the channel it keeps taking frames, then
// sends them back to back without reading serial. Any frame handed over
// less than MaxTxBacklog plus its own cost ago may still be queued or on
// the air, so their costs are added, capped at MaxTxBacklog (a dead modem
// is still found within ReplyTimeout + MaxTxBacklog). txMu is held.
func (d *Driver) txBacklog() time.Duration {
	now := time.Now()
	keep := d.sent[:0]
	var sum time.Duration
	for _, h := range d.sent {
		if now.Sub(h.at) < d.cfg.MaxTxBacklog+h.cost {
			keep = append(keep, h)
			sum += h.cost
		}
	}
	clear(d.sent[len(keep):])
	d.sent = keep
	return min(sum, d.cfg.MaxTxBacklog)
}

// CSMA constants of the RNode firmware (1.86): a slot is 12 symbols,
// 24..100 ms (6 ms minimum above 30 kbit/s); before sending it waits a
// DIFS of 2 slots and a contention window of up to 4 bands of 15 slots,
// and after a transmission it yields 3 slots.
const (
	csmaSlotSymbols = 12
	csmaSlotMaxMs   = 100
	csmaSlotMinMs   = 24
	csmaSlotMinFast = 6
	csmaFastBitrate = 30000
	csmaAccessSlots = 2 + 4*15 + 3
)

// accessWait is the longest the firmware's CSMA waits for one frame on a
// clear channel, from the configured spreading factor, bandwidth and
// coding rate (in the firmware's integer milliseconds).
func (d *Driver) accessWait() time.Duration {
	symMs := float64(uint64(1)<<d.cfg.SF) / float64(d.cfg.BandwidthHz) * 1000
	bitrate := float64(d.cfg.SF) * (4 / float64(d.cfg.CR)) / (symMs) * 1000
	slot := int(symMs * csmaSlotSymbols)
	slot = min(slot, csmaSlotMaxMs)
	if slot < csmaSlotMinMs {
		slot = csmaSlotMinMs
		if bitrate > csmaFastBitrate {
			slot = csmaSlotMinFast
		}
	}
	return time.Duration(csmaAccessSlots*slot) * time.Millisecond
}

// keepalive asks RADIO_STATE when the modem has been quiet for Keepalive,
// so a hung modem is noticed even when nothing is sent.
func (d *Driver) keepalive() {
	t := time.NewTimer(d.cfg.Keepalive)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		}
		d.mu.Lock()
		quiet := time.Since(d.lastAnswer)
		d.mu.Unlock()
		if quiet < d.cfg.Keepalive {
			t.Reset(d.cfg.Keepalive - quiet)
			continue
		}
		if err := d.probe(); err != nil {
			d.fail(err)
			return
		}
		t.Reset(d.cfg.Keepalive)
	}
}

// probe asks RADIO_STATE and waits for the answer; report checks it is on.
func (d *Driver) probe() error {
	d.mu.Lock()
	d.rep.seen &^= fRadioState
	d.mu.Unlock()
	if err := d.write(kiss.CmdRadioState, []byte{kiss.QueryByte}); err != nil {
		return err
	}
	err := d.waitSeen(context.Background(), fRadioState, d.cfg.ReplyTimeout)
	if err == errTimeout {
		return fmt.Errorf("%w: no answer to a RADIO_STATE query within %v (modem hung?)", ErrNoAnswer, d.cfg.ReplyTimeout)
	}
	return err
}
