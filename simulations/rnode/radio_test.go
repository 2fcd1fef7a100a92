package rnode

import (
	"bytes"
	"testing"
	"testing/synctest"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// pair returns two configured modems d metres apart.
func pair(t *testing.T, d float64, sf byte) (*Hub, *host, *host) {
	h := newHub(t, NodeConfig{Name: "A"}, NodeConfig{Name: "B", X: d})
	a, b := plug(t, h, "A"), plug(t, h, "B")
	for _, x := range []*host{a, b} {
		x.expect(fr(kiss.CmdReset, kiss.ResetByte))
		x.configure(sf, 5)
	}
	return h, a, b
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	p[0], p[n-1] = kiss.FEND, kiss.FESC // escaped on the way in and out
	return p
}

// checkDelay verifies that a packet sent at sent arrived at at after the
// firmware's channel access (a DIFS of two slots, then a whole number of
// slots, at most 14) and exactly the airtime of its frames.
func checkDelay(t *testing.T, sent, at time.Time, slot, air time.Duration) {
	t.Helper()
	wait := at.Sub(sent) - air - 2*slot
	if wait < 0 || wait > 14*slot || wait%slot != 0 {
		t.Fatalf("delivered %v after sending: %v airtime + DIFS %v + %v, not a whole number of %v slots up to 14",
			at.Sub(sent), air, 2*slot, wait, slot)
	}
}

// TestExchange: two modems in range exchange packets; each arrives after
// its airtime, preceded by STAT_RSSI and STAT_SNR from the link budget.
func TestExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, 200, 9)
		p := payload(50)
		sent := time.Now()
		a.cmd(kiss.CmdData, p...)
		rssi, snr, data := b.next(), b.next(), b.next()
		if rssi.Cmd != kiss.CmdStatRSSI || snr.Cmd != kiss.CmdStatSNR || data.Cmd != kiss.CmdData || !bytes.Equal(data.Data, p) {
			t.Fatalf("got %02X %02X %02X % X", rssi.Cmd, snr.Cmd, data.Cmd, data.Data)
		}
		// 200 m with the default model: 127.41 + 20.8 log10(200/40) =
		// 141.95 dB of loss, so -124.95 dBm from 17 dBm, an SNR of -7.92
		// dB over the -117.03 dBm noise floor (-32 quarter dB): register
		// 157 - 124.95 + 7.92 = 40 (rounded), reported as 40 - 157 - 8
		// (the SNR in whole dB) = -125 dBm.
		if got, want := kiss.RSSIFromByte(rssi.Data[0]), -125; got != want {
			t.Errorf("RSSI %d dBm, want %d", got, want)
		}
		if got, want := snr.Data[0], byte(0xE0); got != want { // -32 quarter dB
			t.Errorf("SNR byte %02X, want %02X", got, want)
		}
		if !data.at.Equal(snr.at) || !snr.at.Equal(rssi.at) {
			t.Error("RSSI, SNR and DATA not sent together")
		}
		checkDelay(t, sent, data.at, 49*time.Millisecond, airtime(t, 9, len(p)+1))
		// And back.
		sent = time.Now()
		b.cmd(kiss.CmdData, 'h', 'i')
		a.expect(fr(kiss.CmdStatRSSI, rssi.Data...), fr(kiss.CmdStatSNR, snr.Data...))
		back := a.next()
		if !bytes.Equal(back.Data, []byte("hi")) {
			t.Fatalf("got % X", back.Data)
		}
		checkDelay(t, sent, back.at, 49*time.Millisecond, airtime(t, 9, 3))
	})
}

// TestOutOfRange: a modem beyond the link budget hears nothing; so does
// one tuned to another spreading factor.
func TestOutOfRange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, 1.2*rangeM(9), 9)
		a.cmd(kiss.CmdData, payload(20)...)
		time.Sleep(10 * time.Second) // virtual: long past the frame's end
		synctest.Wait()
		if got := b.pending(); len(got) != 0 {
			t.Fatalf("out of range, B got %v", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, 100, 9)
		b.cmd(kiss.CmdSF, 10)
		b.expect(fr(kiss.CmdSF, 10))
		a.cmd(kiss.CmdData, payload(20)...)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := b.pending(); len(got) != 0 {
			t.Fatalf("other SF, B got %v", got)
		}
	})
}

// TestSplit: packets over 254 bytes cross as two LoRa frames (508 bytes as
// three) and arrive whole; a packet over the MTU is dropped by the sender.
func TestSplit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, 100, 7)
		slot := 24 * time.Millisecond // 12 symbols of 1.024 ms is less than the 24 ms minimum
		for _, n := range []int{254, 255, 300, 507, 508} {
			p := payload(n)
			sent := time.Now()
			a.cmd(kiss.CmdData, p...)
			got := b.packet()
			if !bytes.Equal(got.Data, p) {
				t.Fatalf("%d bytes: got %d bytes", n, len(got.Data))
			}
			if testing.Verbose() {
				t.Logf("%d bytes: delivered after %v", n, got.at.Sub(sent))
			}
			air := airtime(t, 7, min(n+1, 255))
			switch {
			case n == 508:
				air += airtime(t, 7, 255) // the header-only third frame follows after delivery
			case n > 254:
				air += airtime(t, 7, n-254+1)
			}
			checkDelay(t, sent, got.at, slot, air)
			// Let the airtime share fall back below 7 %, or the contention
			// window widens (as the firmware's does).
			time.Sleep(30 * time.Second)
		}
		a.cmd(kiss.CmdData, payload(509)...)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := b.pending(); len(got) != 0 {
			t.Fatalf("a 509-byte packet was sent: %v", got)
		}
	})
}

// TestReadyAndQueueFull: READY says whether the queue has room. With the
// radio off nothing is sent (and no error reported: the firmware keeps the
// packets); 200 packets fill the queue, READY says so, later packets are
// lost; turning the radio on sends the queue.
func TestReadyAndQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, 100, 7)
		a.cmd(kiss.CmdReady, 0)
		a.expect(fr(kiss.CmdReady, kiss.ReadyYes))
		a.cmd(kiss.CmdRadioState, kiss.RadioStateOff)
		a.expect(fr(kiss.CmdRadioState, 0))
		for i := range 201 {
			a.cmd(kiss.CmdData, byte(i), byte(i>>8))
		}
		a.cmd(kiss.CmdReady, 0)
		a.expect(fr(kiss.CmdReady, kiss.ReadyNo))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := b.pending(); len(got) != 0 {
			t.Fatalf("radio off, yet B got %d frames", len(got))
		}
		a.cmd(kiss.CmdRadioState, kiss.RadioStateOn)
		a.expect(fr(kiss.CmdRadioState, 1), fr(kiss.CmdRadioState, 1))
		for i := range 200 {
			if got := b.packet(); !bytes.Equal(got.Data, []byte{byte(i), byte(i >> 8)}) {
				t.Fatalf("packet %d: got % X", i, got.Data)
			}
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := b.pending(); len(got) != 0 {
			t.Fatalf("the 201st packet was sent: %v", got)
		}
		a.cmd(kiss.CmdReady, 0)
		a.expect(fr(kiss.CmdReady, kiss.ReadyYes))
		// By bytes: 13 packets of 500 bytes overflow 6144 bytes.
		a.cmd(kiss.CmdRadioState, kiss.RadioStateOff)
		a.expect(fr(kiss.CmdRadioState, 0))
		for range 13 {
			a.cmd(kiss.CmdData, payload(500)...)
		}
		a.cmd(kiss.CmdReady, 0)
		a.expect(fr(kiss.CmdReady, kiss.ReadyNo))
	})
}

// TestFrequencyDrift: every radio start reads the synthesizer back into the
// frequency setting and writes it again, one 61 Hz step lower each time (as
// the firmware does); the frequency echo shows it, and the modems still hear
// each other.
func TestFrequencyDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, 100, 9)
		for range 3 {
			a.cmd(kiss.CmdRadioState, kiss.RadioStateOff)
			a.cmd(kiss.CmdRadioState, kiss.RadioStateOn)
			a.expect(fr(kiss.CmdRadioState, 0), fr(kiss.CmdRadioState, 1), fr(kiss.CmdRadioState, 1))
		}
		a.cmd(kiss.CmdFrequency, kiss.U32(0)...)
		// 869525000 Hz is 869524963 in the synthesizer's steps; three
		// restarts more take it three steps (61.04 Hz) lower.
		a.expect(fr(kiss.CmdFrequency, kiss.U32(869524963-3*61)...))
		a.cmd(kiss.CmdData, 'd')
		if got := b.packet(); !bytes.Equal(got.Data, []byte{'d'}) {
			t.Fatalf("got %q", got.Data)
		}
	})
}

// TestDataFrameNeedsItsOwnFEND: the FEND that ends a DATA frame does not
// open the next frame in the firmware (it does after any other command), so
// a DATA frame sharing its opening FEND with the previous DATA frame is
// ignored; the emulator does the same.
func TestDataFrameNeedsItsOwnFEND(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, 100, 9)
		a.send(kiss.FEND, kiss.CmdData, 'a', kiss.FEND, kiss.CmdData, 'b', kiss.FEND, kiss.FEND, kiss.CmdData, 'c', kiss.FEND)
		time.Sleep(time.Minute)
		got := received(b)
		if len(got) != 2 || string(got[0]) != "a" || string(got[1]) != "c" {
			t.Fatalf("B received %q, want a and c", got)
		}
	})
}
