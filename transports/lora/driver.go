package lora

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// Packet is a frame the modem received over the air.
type Packet struct {
	Data []byte
	// RSSI in dBm and SNR in dB of the frame, from the STAT_RSSI and
	// STAT_SNR frames that precede DATA; HasSignal is false if the modem
	// sent none.
	RSSI      int
	SNR       float64
	HasSignal bool
}

// Driver speaks the RNode host protocol over one open port. It is safe for
// concurrent use; Send holds one frame at a time.
type Driver struct {
	cfg  Config
	port io.ReadWriteCloser
	log  *slog.Logger
	lim  *logLimiter

	wq   chan writeReq // to the writer goroutine, which owns port writes
	txMu sync.Mutex    // window of one frame
	sent []handover    // frames handed over in the last MaxTxBacklog; txMu

	mu         sync.Mutex
	rep        reported
	configured bool // start-up done and echoes checked
	stats      Stats
	pending    signal // RSSI/SNR for the next DATA
	lastAnswer time.Time
	resets     int // reset announcements seen

	changed chan struct{} // a report arrived (buffer 1)
	ready   chan byte     // READY answers (buffer 1, newest kept)
	txErr   chan error    // modem errors that fail the frame in flight
	packets chan Packet

	done    chan struct{}
	errOnce sync.Once
	err     error
}

type signal struct {
	rssi, snr       byte
	hasRSSI, hasSNR bool
}

// Start runs the start-up sequence on port and returns a configured driver.
// On error the port is closed. ctx bounds the start-up only.
func Start(ctx context.Context, port io.ReadWriteCloser, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		port.Close()
		return nil, err
	}
	c := cfg.withDefaults()
	log := c.Logger.With("lora", c.Name)
	d := &Driver{
		cfg: c, port: port, log: log, lim: newLogLimiter(c.LogInterval, log),
		changed: make(chan struct{}, 1),
		ready:   make(chan byte, 1),
		txErr:   make(chan error, 1),
		packets: make(chan Packet, c.RxQueue),
		done:    make(chan struct{}),
		wq:      make(chan writeReq),
	}
	go d.writer()
	go d.readLoop()
	if err := d.startup(ctx); err != nil {
		d.fail(err)
		return nil, d.err // the first cause: a modem error may have come first
	}
	go d.keepalive()
	return d, nil
}

// Packets delivers received frames. It is closed when the driver ends.
func (d *Driver) Packets() <-chan Packet { return d.packets }

// Done is closed when the driver has ended; Err then says why.
func (d *Driver) Done() <-chan struct{} { return d.done }

// Err returns why the driver ended, or nil while it runs.
func (d *Driver) Err() error {
	select {
	case <-d.done:
		return d.err
	default:
		return nil
	}
}

// leaveWait bounds how long Close waits to tell the modem it leaves.
const leaveWait = 200 * time.Millisecond

// Close tells the modem the host leaves (LEAVE 0xFF) and closes the port.
// It does not wait more than leaveWait for the port to take LEAVE: a modem
// that stopped reading must not hold up the daemon.
func (d *Driver) Close() error {
	select {
	case <-d.done:
		return nil
	default:
	}
	sent := make(chan struct{})
	go func() {
		_ = d.write(kiss.CmdLeave, []byte{kiss.LeaveByte})
		close(sent)
	}()
	t := time.NewTimer(leaveWait)
	select {
	case <-sent:
	case <-t.C:
	}
	t.Stop()
	d.fail(ErrClosed)
	return nil
}

// fail ends the driver once with err: the port is closed, Done closes.
func (d *Driver) fail(err error) {
	d.errOnce.Do(func() {
		d.err = err
		d.port.Close()
		close(d.done)
		if !errors.Is(err, ErrClosed) {
			d.log.Error("lora: modem link ended", "err", err)
		}
	})
}

// write sends one frame to the modem.
func (d *Driver) write(cmd byte, data []byte) error {
	b, err := kiss.Encode(cmd, data)
	if err != nil {
		return err
	}
	return d.writeRaw(b)
}

// writeReq is one write for the writer goroutine.
type writeReq struct {
	b    []byte
	done chan error
}

// writeRaw hands b to the writer and waits until the port took it. A port
// that takes nothing for ReplyTimeout (a modem whose USB side stopped
// reading blocks writes for ever) ends the driver; the blocked write is
// left behind with the old port.
func (d *Driver) writeRaw(b []byte) error {
	select {
	case <-d.done:
		return d.err
	default:
	}
	r := writeReq{b: b, done: make(chan error, 1)}
	t := time.NewTimer(d.cfg.ReplyTimeout)
	defer t.Stop()
	select {
	case d.wq <- r:
	case <-d.done:
		return d.err
	case <-t.C:
		return d.stuck()
	}
	select {
	case err := <-r.done:
		if err != nil {
			err = fmt.Errorf("%w: write: %w", ErrPort, err)
			d.fail(err)
		}
		return err
	case <-d.done:
		return d.err
	case <-t.C:
		return d.stuck()
	}
}

func (d *Driver) stuck() error {
	err := fmt.Errorf("%w: the port took no data for %v", ErrNoAnswer, d.cfg.ReplyTimeout)
	d.fail(err)
	return err
}

// writer performs the port writes, one frame at a time, in order.
func (d *Driver) writer() {
	for {
		select {
		case r := <-d.wq:
			_, err := d.port.Write(r.b)
			r.done <- err
		case <-d.done:
			return
		}
	}
}

// readLoop decodes the modem's frames until the port fails or closes.
func (d *Driver) readLoop() {
	defer close(d.packets)
	gr := &gapReader{r: d.port, gap: d.cfg.FrameGap}
	dec := kiss.NewDecoder(gr, kiss.MaxHostFrame)
	gr.onGap = func() {
		// The firmware sends a signal report right before its DATA frame;
		// one followed by silence describes no packet to come.
		d.mu.Lock()
		d.pending = signal{}
		d.mu.Unlock()
		if dec.Parser().InFrame() {
			dec.Parser().Reset()
			d.count(func(s *Stats) { s.DecodeErrors++ })
			d.lim.warn("gap", "lora: dropped a frame the modem left unfinished", "silence", d.cfg.FrameGap)
		}
	}
	for {
		f, err := dec.Next()
		switch {
		case err == nil:
			d.handle(f)
		case errors.Is(err, kiss.ErrFrameTooLong), errors.Is(err, kiss.ErrBadEscape), errors.Is(err, kiss.ErrGarbage):
			d.count(func(s *Stats) { s.DecodeErrors++ })
			d.lim.warn("decode", "lora: bad bytes from modem", "err", err)
		default:
			select {
			case <-d.done:
			default:
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				d.fail(fmt.Errorf("%w: read: %w", ErrPort, err))
			}
			return
		}
	}
}

// gapReader calls onGap before handing over bytes that arrived more than
// gap after the previous ones. The decoder reads only when it has used
// every byte before, so onGap sees the parser exactly where the silence
// left it.
type gapReader struct {
	r     io.Reader
	gap   time.Duration
	last  time.Time
	onGap func()
}

func (g *gapReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if n > 0 {
		now := time.Now()
		if !g.last.IsZero() && now.Sub(g.last) > g.gap && g.onGap != nil {
			g.onGap()
		}
		g.last = now
	}
	return n, err
}

func (d *Driver) count(f func(*Stats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// handle dispatches one frame from the modem.
func (d *Driver) handle(f kiss.Frame) {
	switch f.Cmd {
	case kiss.CmdData:
		d.receive(f.Data)
	case kiss.CmdStatRSSI, kiss.CmdStatSNR:
		d.signal(f)
	case kiss.CmdReady:
		d.onReady(f.Data)
	case kiss.CmdError:
		d.onError(f.Data)
	case kiss.CmdStatChTm:
		d.onChannelStats(f.Data)
	case kiss.CmdReset:
		if len(f.Data) == 1 && f.Data[0] == kiss.ResetByte {
			d.onReset()
		}
	default:
		if !d.report(f) {
			d.count(func(s *Stats) { s.OtherFrames++ })
		}
	}
}

// onReset handles the modem's reset announcement (ESP32 and nRF52 firmware
// send it when they boot, and opening the port reboots an ESP32). While
// starting up it is expected: startup notices and configures again. Once
// configured, the modem has lost its settings: the driver ends (Reticulum's
// host driver does the same), and the supervisor starts over.
func (d *Driver) onReset() {
	d.mu.Lock()
	configured := d.configured
	d.resets++
	d.mu.Unlock()
	if configured {
		d.fail(fmt.Errorf("%w: the modem announced a reset", ErrModemReset))
		return
	}
	d.notify()
}

func (d *Driver) signal(f kiss.Frame) {
	if len(f.Data) != 1 {
		d.count(func(s *Stats) { s.DecodeErrors++ })
		return
	}
	d.mu.Lock()
	if f.Cmd == kiss.CmdStatRSSI {
		d.pending.rssi, d.pending.hasRSSI = f.Data[0], true
	} else {
		d.pending.snr, d.pending.hasSNR = f.Data[0], true
	}
	d.mu.Unlock()
}

// receive hands a DATA frame to Packets with the signal report that
// preceded it. A full queue drops the newest packet: the reader must keep
// draining the port, or READY answers would be lost behind a flood.
func (d *Driver) receive(data []byte) {
	if len(data) == 0 {
		return
	}
	d.mu.Lock()
	p := Packet{Data: data}
	if d.pending.hasRSSI && d.pending.hasSNR {
		p.RSSI, p.SNR, p.HasSignal = kiss.RSSIFromByte(d.pending.rssi), kiss.SNRFromByte(d.pending.snr), true
		d.stats.LastRSSI, d.stats.LastSNR, d.stats.HasSignal = p.RSSI, p.SNR, true
	}
	d.pending = signal{}
	d.lastAnswer = time.Now()
	d.mu.Unlock()
	select {
	case d.packets <- p:
		d.count(func(s *Stats) { s.RxFrames++; s.RxBytes += uint64(len(data)) })
	default:
		d.count(func(s *Stats) { s.RxDropped++ })
		d.lim.warn("rxdrop", "lora: received packets dropped, the daemon does not keep up")
	}
}

func (d *Driver) onReady(data []byte) {
	if len(data) != 1 {
		d.count(func(s *Stats) { s.DecodeErrors++ })
		return
	}
	d.touch()
	select {
	case <-d.ready: // keep only the newest answer
	default:
	}
	d.ready <- data[0]
}

func (d *Driver) onError(data []byte) {
	if len(data) != 1 {
		d.count(func(s *Stats) { s.DecodeErrors++ })
		return
	}
	e := &ModemError{Code: data[0]}
	d.count(func(s *Stats) { s.ModemErrors[min(int(e.Code), len(s.ModemErrors)-1)]++ })
	if fatalModemError(e.Code) {
		d.fail(e)
		return
	}
	d.lim.warn(fmt.Sprintf("modem%02x", e.Code), "lora: modem reported an error", "err", e)
	if e.Code == kiss.ErrorQueueFull {
		select {
		case d.txErr <- e:
		default:
		}
	}
}

func (d *Driver) onChannelStats(data []byte) {
	cs, err := kiss.ParseChannelStats(data)
	if err != nil {
		d.count(func(s *Stats) { s.DecodeErrors++ })
		return
	}
	d.count(func(s *Stats) { s.Channel, s.HasChannel = cs, true })
}

// touch records that the modem answered something.
func (d *Driver) touch() {
	d.mu.Lock()
	d.lastAnswer = time.Now()
	d.mu.Unlock()
}

// notify wakes a waiter for reports.
func (d *Driver) notify() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}
