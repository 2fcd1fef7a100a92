package lora

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// field is one value the modem reports.
type field uint16

const (
	fDetect field = 1 << iota
	fFirmware
	fPlatform
	fMCU
	fFrequency
	fBandwidth
	fTxPower
	fSF
	fCR
	fSTLock
	fLTLock
	fRadioState
)

// reported is what the modem said, and which fields it said since the
// last reset of seen.
type reported struct {
	seen             field
	detected         bool
	fwMajor, fwMinor byte
	platform, mcu    byte
	frequency, bw    uint32
	txPower, sf, cr  byte
	radioState       byte
	stLock, ltLock   uint16
}

// report stores a settings frame. It returns false for commands it does
// not know. After start-up, a reported setting that differs from the
// configuration ends the driver: the modem changed under us (a reset, or
// another program on the port), and it must not transmit so.
func (d *Driver) report(f kiss.Frame) bool {
	d.mu.Lock()
	r := &d.rep
	var fl field
	ok := true
	switch {
	case f.Cmd == kiss.CmdDetect && len(f.Data) == 1:
		fl, r.detected = fDetect, f.Data[0] == kiss.DetectResp
	case f.Cmd == kiss.CmdFWVersion && len(f.Data) == 2:
		fl, r.fwMajor, r.fwMinor = fFirmware, f.Data[0], f.Data[1]
	case f.Cmd == kiss.CmdPlatform && len(f.Data) == 1:
		fl, r.platform = fPlatform, f.Data[0]
	case f.Cmd == kiss.CmdMCU && len(f.Data) == 1:
		fl, r.mcu = fMCU, f.Data[0]
	case f.Cmd == kiss.CmdFrequency && len(f.Data) == 4:
		fl, r.frequency = fFrequency, be32(f.Data)
	case f.Cmd == kiss.CmdBandwidth && len(f.Data) == 4:
		fl, r.bw = fBandwidth, be32(f.Data)
	case f.Cmd == kiss.CmdTxPower && len(f.Data) == 1:
		fl, r.txPower = fTxPower, f.Data[0]
	case f.Cmd == kiss.CmdSF && len(f.Data) == 1:
		fl, r.sf = fSF, f.Data[0]
	case f.Cmd == kiss.CmdCR && len(f.Data) == 1:
		fl, r.cr = fCR, f.Data[0]
	case f.Cmd == kiss.CmdSTALock && len(f.Data) == 2:
		fl, r.stLock = fSTLock, uint16(f.Data[0])<<8|uint16(f.Data[1])
	case f.Cmd == kiss.CmdLTALock && len(f.Data) == 2:
		fl, r.ltLock = fLTLock, uint16(f.Data[0])<<8|uint16(f.Data[1])
	case f.Cmd == kiss.CmdRadioState && len(f.Data) == 1:
		fl, r.radioState = fRadioState, f.Data[0]
	default:
		ok = false
	}
	r.seen |= fl
	var err error
	if ok && d.configured {
		err = d.checkLocked(fl)
	}
	d.lastAnswer = time.Now()
	d.mu.Unlock()
	if err != nil {
		d.fail(err)
	}
	if ok {
		d.notify()
	}
	return ok
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// startup runs detect, configure and validate.
func (d *Driver) startup(ctx context.Context) error {
	// A modem that reboots while being configured (its boot announcement
	// arrives after the detect answer) forgot what it was told: detect and
	// configure again, a few times.
	for attempt := 1; ; attempt++ {
		d.mu.Lock()
		r0 := d.resets
		d.mu.Unlock()
		if err := d.detect(ctx); err != nil {
			return err
		}
		if err := d.configure(ctx); err != nil {
			return err
		}
		d.mu.Lock()
		again := d.resets != r0
		d.mu.Unlock()
		if !again {
			break
		}
		if attempt == maxStartAttempts {
			return fmt.Errorf("%w: it rebooted during configuration %d times", ErrModemReset, attempt)
		}
		d.log.Info("lora: modem rebooted during configuration, configuring again")
		d.mu.Lock()
		d.rep.seen = 0
		d.mu.Unlock()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.checkLocked(d.wanted()); err != nil {
		return err
	}
	d.configured = true
	d.stats.Firmware = fmt.Sprintf("%d.%d", d.rep.fwMajor, d.rep.fwMinor)
	d.stats.Platform, d.stats.MCU = d.rep.platform, d.rep.mcu
	d.log.Info("lora: modem configured", "firmware", d.stats.Firmware,
		"platform", fmt.Sprintf("0x%02X", d.rep.platform), "frequency", d.cfg.FrequencyHz,
		"bandwidth", d.cfg.BandwidthHz, "sf", d.cfg.SF, "cr", d.cfg.CR, "txpower", d.cfg.TxPowerDBm)
	return nil
}

// maxStartAttempts bounds how often startup begins again after the modem
// rebooted during it.
const maxStartAttempts = 3

// detectRequest is DETECT, FW_VERSION, PLATFORM and MCU in one write, byte
// for byte what Reticulum's host driver sends (frames sharing their FENDs).
var detectRequest = []byte{
	kiss.FEND, kiss.CmdDetect, kiss.DetectReq,
	kiss.FEND, kiss.CmdFWVersion, 0x00,
	kiss.FEND, kiss.CmdPlatform, 0x00,
	kiss.FEND, kiss.CmdMCU, 0x00,
	kiss.FEND,
}

// detect asks until the modem answers DETECT, firmware version, platform
// and MCU, or DetectTimeout passes.
func (d *Driver) detect(ctx context.Context) error {
	const want = fDetect | fFirmware | fPlatform | fMCU
	deadline := time.NewTimer(d.cfg.DetectTimeout)
	defer deadline.Stop()
	for {
		if err := d.writeRaw(detectRequest); err != nil {
			return err
		}
		err := d.waitSeen(ctx, want, d.cfg.DetectRetry)
		if err == nil {
			break
		}
		if !errors.Is(err, errTimeout) {
			return err
		}
		select {
		case <-deadline.C:
			return d.detectError()
		default:
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.rep
	if !r.detected {
		return fmt.Errorf("%w: the device answered DETECT with another byte than 0x46", ErrNotDetected)
	}
	if r.fwMajor < kiss.MinFirmwareMajor || (r.fwMajor == kiss.MinFirmwareMajor && r.fwMinor < kiss.MinFirmwareMinor) {
		return fmt.Errorf("%w: version %d.%d is older than %d.%d; update it with rnodeconf",
			ErrFirmware, r.fwMajor, r.fwMinor, kiss.MinFirmwareMajor, kiss.MinFirmwareMinor)
	}
	return nil
}

func (d *Driver) detectError() error {
	d.mu.Lock()
	seen := d.rep.seen
	d.mu.Unlock()
	if seen&fDetect == 0 {
		return fmt.Errorf("%w within %v (is this an RNode, at 115200 baud?)", ErrNotDetected, d.cfg.DetectTimeout)
	}
	return fmt.Errorf("%w: detected, but no firmware version, platform and MCU within %v", ErrNoAnswer, d.cfg.DetectTimeout)
}

// wanted is the set of fields the configuration sets.
func (d *Driver) wanted() field {
	w := fFrequency | fBandwidth | fTxPower | fSF | fCR | fRadioState
	if d.cfg.STALock != 0 {
		w |= fSTLock
	}
	if d.cfg.LTALock != 0 {
		w |= fLTLock
	}
	return w
}

// configure sends the settings in the firmware's order and waits for every
// echo.
func (d *Driver) configure(ctx context.Context) error {
	d.mu.Lock()
	d.rep.seen &^= d.wanted()
	d.mu.Unlock()
	c := d.cfg
	cmds := []struct {
		cmd  byte
		data []byte
	}{
		{kiss.CmdFrequency, kiss.U32(c.FrequencyHz)},
		{kiss.CmdBandwidth, kiss.U32(c.BandwidthHz)},
		{kiss.CmdTxPower, []byte{byte(c.TxPowerDBm)}},
		{kiss.CmdSF, []byte{byte(c.SF)}},
		{kiss.CmdCR, []byte{byte(c.CR)}},
	}
	if c.STALock != 0 {
		cmds = append(cmds, struct {
			cmd  byte
			data []byte
		}{kiss.CmdSTALock, kiss.U16(c.STALock)})
	}
	if c.LTALock != 0 {
		cmds = append(cmds, struct {
			cmd  byte
			data []byte
		}{kiss.CmdLTALock, kiss.U16(c.LTALock)})
	}
	for _, x := range cmds {
		if err := d.write(x.cmd, x.data); err != nil {
			return err
		}
	}
	if err := d.write(kiss.CmdRadioState, []byte{kiss.RadioStateOn}); err != nil {
		return err
	}
	if err := d.waitSeen(ctx, d.wanted(), d.cfg.ReplyTimeout); err != nil {
		if errors.Is(err, errTimeout) {
			return d.missingError()
		}
		return err
	}
	return nil
}

func (d *Driver) missingError() error {
	d.mu.Lock()
	missing := d.wanted() &^ d.rep.seen
	d.mu.Unlock()
	return fmt.Errorf("%w: no echo of %s within %v", ErrNoAnswer, fieldNames(missing), d.cfg.ReplyTimeout)
}

var errTimeout = errors.New("lora: timeout")

// waitSeen waits until every field of want was reported.
func (d *Driver) waitSeen(ctx context.Context, want field, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		d.mu.Lock()
		seen := d.rep.seen
		d.mu.Unlock()
		if seen&want == want {
			return nil
		}
		select {
		case <-d.changed:
		case <-t.C:
			return errTimeout
		case <-d.done:
			return d.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkLocked compares the reported fields in which with the
// configuration; d.mu is held.
func (d *Driver) checkLocked(which field) error {
	c, r := d.cfg, d.rep
	var bad []string
	mismatch := func(f field, name string, want, got any, differ bool) {
		if which&f != 0 && differ {
			bad = append(bad, fmt.Sprintf("%s: configured %v, modem applied %v", name, want, got))
		}
	}
	fd := int64(r.frequency) - int64(c.FrequencyHz)
	mismatch(fFrequency, "frequency", fmt.Sprintf("%d Hz", c.FrequencyHz), fmt.Sprintf("%d Hz", r.frequency), fd > 100 || fd < -100)
	mismatch(fBandwidth, "bandwidth", fmt.Sprintf("%d Hz", c.BandwidthHz), fmt.Sprintf("%d Hz", r.bw), r.bw != c.BandwidthHz)
	mismatch(fTxPower, "TX power", fmt.Sprintf("%d dBm", c.TxPowerDBm), fmt.Sprintf("%d dBm", r.txPower), int(r.txPower) != c.TxPowerDBm)
	mismatch(fSF, "spreading factor", c.SF, r.sf, int(r.sf) != c.SF)
	mismatch(fCR, "coding rate", fmt.Sprintf("4/%d", c.CR), fmt.Sprintf("4/%d", r.cr), int(r.cr) != c.CR)
	// The firmware stores a lock as a float and echoes (uint16)(f*100*100),
	// which can come back one lower.
	mismatch(fSTLock, "short-term airtime lock", c.STALock, r.stLock, lockDiffers(c.STALock, r.stLock))
	mismatch(fLTLock, "long-term airtime lock", c.LTALock, r.ltLock, lockDiffers(c.LTALock, r.ltLock))
	if which&fRadioState != 0 && r.radioState != kiss.RadioStateOn {
		return fmt.Errorf("%w: RADIO_STATE 0x%02X, want 0x01 (on)", ErrRadioOff, r.radioState)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w; refusing to transmit: %s", ErrEchoMismatch, strings.Join(bad, "; "))
	}
	return nil
}

func lockDiffers(want, got uint16) bool { return got != want && got+1 != want }

func fieldNames(f field) string {
	names := []string{"DETECT", "FW_VERSION", "PLATFORM", "MCU", "FREQUENCY", "BANDWIDTH", "TXPOWER", "SF", "CR", "ST_ALOCK", "LT_ALOCK", "RADIO_STATE"}
	var out []string
	for i, n := range names {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}
