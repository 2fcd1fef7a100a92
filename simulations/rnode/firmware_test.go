package rnode

import (
	"bytes"
	"testing"
	"testing/synctest"

	"meshd.dev/meshd/transports/lora/kiss"
)

func one(t *testing.T) (*Hub, *host) {
	h := newHub(t, NodeConfig{Name: "A"})
	a := plug(t, h, "A")
	a.expect(fr(kiss.CmdReset, kiss.ResetByte)) // the boot announcement
	return h, a
}

// TestDetect: the start-up query of Reticulum's and meshd's drivers (four
// frames sharing their FENDs) is answered byte for byte as the firmware
// answers it.
func TestDetect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a := one(t)
		a.raw.Reset()
		a.send(kiss.FEND, kiss.CmdDetect, kiss.DetectReq, kiss.FEND, kiss.CmdFWVersion, 0x00,
			kiss.FEND, kiss.CmdPlatform, 0x00, kiss.FEND, kiss.CmdMCU, 0x00, kiss.FEND)
		synctest.Wait()
		want := []byte{0xC0, 0x08, 0x46, 0xC0, 0xC0, 0x50, 0x01, 0x56, 0xC0, 0xC0, 0x48, 0x80, 0xC0, 0xC0, 0x49, 0x81, 0xC0}
		if got := a.raw.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("answer % X, want % X", got, want)
		}
		a.send(kiss.FEND, kiss.CmdDetect, 0x12, kiss.FEND) // a wrong request is ignored
		a.cmd(kiss.CmdBoard, 0)
		a.expect(fr(kiss.CmdDetect, kiss.DetectResp), fr(kiss.CmdFWVersion, 1, 0x56), fr(kiss.CmdPlatform, 0x80),
			fr(kiss.CmdMCU, 0x81), fr(kiss.CmdBoard, 0x41))
	})
}

// TestConfigEchoes: every setting is echoed with the value the firmware
// applied (clamped, quantised by the chip once the radio is on), queries
// answer the current value, and the radio refuses to start while a
// setting is missing.
func TestConfigEchoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a := one(t)
		a.cmd(kiss.CmdRadioState, kiss.RadioStateOn) // locked: nothing set yet
		a.expect(fr(kiss.CmdRadioState, 0), fr(kiss.CmdRadioState, 0))
		a.cmd(kiss.CmdRadioLock, 0)
		a.expect(fr(kiss.CmdRadioLock, 1))
		a.cmd(kiss.CmdSF, 0xFF)
		a.expect(fr(kiss.CmdSF, 0))
		a.cmd(kiss.CmdTxPower, 0xFF)
		a.expect(fr(kiss.CmdTxPower, 0xFF))
		a.cmd(kiss.CmdCR, 0xFF)
		a.expect(fr(kiss.CmdCR, 5))
		steps := []struct {
			cmd  byte
			arg  []byte
			echo []byte
		}{
			{kiss.CmdFrequency, kiss.U32(868100000), kiss.U32(868100000)}, // radio off: as given
			{kiss.CmdFrequency, kiss.U32(0), kiss.U32(868100000)},         // query
			{kiss.CmdBandwidth, kiss.U32(100000), kiss.U32(100000)},       // radio off: as given
			{kiss.CmdBandwidth, kiss.U32(0), kiss.U32(100000)},
			{kiss.CmdTxPower, []byte{22}, []byte{17}}, // the SX1276 build's maximum
			{kiss.CmdTxPower, []byte{0}, []byte{0}},
			{kiss.CmdSF, []byte{4}, []byte{5}},
			{kiss.CmdSF, []byte{13}, []byte{12}},
			{kiss.CmdSF, []byte{9}, []byte{9}},
			{kiss.CmdCR, []byte{4}, []byte{5}},
			{kiss.CmdCR, []byte{9}, []byte{8}},
			{kiss.CmdCR, []byte{5}, []byte{5}},
			{kiss.CmdSTALock, kiss.U16(2500), kiss.U16(2500)}, // 25 %
			{kiss.CmdSTALock, kiss.U16(10000), kiss.U16(0)},   // 100 %: no limit
			{kiss.CmdLTALock, kiss.U16(100), kiss.U16(100)},   // 1 %
			{kiss.CmdLTALock, kiss.U16(53), kiss.U16(52)},     // the float echo loses one
			{kiss.CmdImplicit, []byte{0}, []byte{0}},
			{kiss.CmdPromisc, []byte{0}, []byte{0}},
			{kiss.CmdRadioState, []byte{0xFF}, []byte{0}},
		}
		for _, s := range steps {
			a.cmd(s.cmd, s.arg...)
			a.expect(fr(s.cmd, s.echo...))
		}
		a.cmd(kiss.CmdRadioLock, 0)
		a.expect(fr(kiss.CmdRadioLock, 0))
		a.cmd(kiss.CmdRadioState, kiss.RadioStateOn)
		// Three PHY reports (bandwidth, SF, coding rate applied), then the
		// state twice (startRadio and the command handler).
		var phy []kiss.Frame
		for range 3 {
			f := <-a.frames
			phy = append(phy, f.Frame)
		}
		for _, f := range phy {
			if f.Cmd != kiss.CmdStatPhyPrm || len(f.Data) != 12 {
				t.Fatalf("got % X, want STAT_PHYPRM", f.Data)
			}
		}
		// SF9 at 125 kHz: 4.096 ms symbols (4096 us), 244 baud, 18
		// preamble symbols, a 49 ms slot, a 98 ms DIFS; the first report
		// has the preamble time of before (0).
		if want := []byte{0x10, 0x00, 0, 244, 0, 18, 0, 0, 0, 49, 0, 98}; !bytes.Equal(phy[0].Data, want) {
			t.Errorf("PHY report % X, want % X", phy[0].Data, want)
		}
		if want := []byte{0x10, 0x00, 0, 244, 0, 18, 0, 74, 0, 49, 0, 98}; !bytes.Equal(phy[2].Data, want) {
			t.Errorf("last PHY report % X, want % X", phy[2].Data, want)
		}
		a.expect(fr(kiss.CmdRadioState, 1), fr(kiss.CmdRadioState, 1))
		// With the radio on, the chip's values: 100 kHz is not an SX1276
		// bandwidth (125 kHz is used), and the synthesizer has 61 Hz steps.
		a.cmd(kiss.CmdBandwidth, kiss.U32(0)...)
		a.expect(fr(kiss.CmdBandwidth, kiss.U32(125000)...))
		a.cmd(kiss.CmdFrequency, kiss.U32(869525000)...)
		a.expect(fr(kiss.CmdFrequency, kiss.U32(869524963)...))
		a.cmd(kiss.CmdRadioState, kiss.RadioStateOn) // already on
		a.expect(fr(kiss.CmdRadioState, 1), fr(kiss.CmdRadioState, 1))
		a.cmd(kiss.CmdRadioState, kiss.RadioStateOff)
		a.expect(fr(kiss.CmdRadioState, 0))
		a.cmd(kiss.CmdStatRX, 0)
		a.expect(fr(kiss.CmdStatRX, 0, 0, 0, 0)) // the firmware never counts
		a.cmd(kiss.CmdStatRSSI, 0)
		a.expect(fr(kiss.CmdStatRSSI, 121)) // no packet yet: (uint8)(-292 + 157)
	})
}

// TestParserQuirks: the firmware acts on every argument byte of a one-byte
// command, acts on a four-byte command again when a FESC follows, and
// keeps the escape state across frames; the emulator does the same.
func TestParserQuirks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a := one(t)
		a.send(kiss.FEND, kiss.CmdTxPower, 3, 4, kiss.FEND)
		a.expect(fr(kiss.CmdTxPower, 3), fr(kiss.CmdTxPower, 4))
		a.send(kiss.FEND, kiss.CmdFrequency, 0x33, 0xD3, 0x05, 0x10, kiss.FESC, kiss.FEND)
		a.expect(fr(kiss.CmdFrequency, 0x33, 0xD3, 0x05, 0x10), fr(kiss.CmdFrequency, 0x33, 0xD3, 0x05, 0x10))
		// The FESC above is still pending: TFEND in the next frame's
		// argument becomes FEND.
		a.send(kiss.FEND, kiss.CmdSTALock, kiss.TFEND, 0x00, kiss.FEND)
		a.expect(fr(kiss.CmdSTALock, 0, 0)) // 0xC000 is 491.52 %: no limit
	})
}
