package rnode

import (
	"testing"
	"testing/synctest"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
)

// FuzzModemInput feeds arbitrary host bytes to a modem that shares the air
// with a configured one. Whatever comes in, the emulator must not panic,
// its queue must stay within the firmware's bounds, and everything both
// modems send their hosts must be well-formed frames (the host test reader
// fails the test on any frame the strict parser refuses).
func FuzzModemInput(f *testing.F) {
	cfg := []byte{}
	add := func(cmd byte, data ...byte) {
		b, _ := kiss.Encode(cmd, data)
		cfg = append(cfg, b...)
	}
	add(kiss.CmdFrequency, kiss.U32(testFreq)...)
	add(kiss.CmdBandwidth, kiss.U32(testBW)...)
	add(kiss.CmdTxPower, 14)
	add(kiss.CmdSF, 7)
	add(kiss.CmdRadioState, 1)
	f.Add(append([]byte{}, cfg...))
	add(kiss.CmdData, payload(300)...)
	add(kiss.CmdData)
	add(kiss.CmdReady, 0)
	f.Add(cfg)
	f.Add([]byte{kiss.FEND, kiss.CmdDetect, kiss.DetectReq, kiss.FEND, kiss.CmdFWVersion, 0, kiss.FEND})
	f.Add([]byte{kiss.FEND, kiss.CmdFrequency, kiss.FESC, kiss.FESC, kiss.TFEND, 1, 2, 3, kiss.FEND, kiss.CmdData, kiss.FESC})
	f.Add([]byte{kiss.FEND, kiss.CmdReset, kiss.ResetByte, kiss.FEND, cmdUnknown, kiss.CmdSF, 12})
	f.Fuzz(func(t *testing.T, in []byte) {
		synctest.Test(t, func(t *testing.T) {
			h := newHub(t, NodeConfig{Name: "A"}, NodeConfig{Name: "B", X: 50})
			a, b := plug(t, h, "A"), plug(t, h, "B")
			b.send(cfg...)
			for len(in) > 0 { // in pieces, with time passing between them
				n := min(len(in), 1+int(in[0])%64)
				a.send(in[:n]...)
				in = in[n:]
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			h.mu.Lock()
			for _, m := range h.modems {
				if len(m.fifo) > queueMaxLength || m.queueHeight > queueMaxLength || len(m.pendingIn) > serialBufferSize {
					t.Errorf("modem %s: queue out of bounds: %d entries, height %d, %d pending", m.name, len(m.fifo), m.queueHeight, len(m.pendingIn))
				}
			}
			h.mu.Unlock()
			a.close()
			b.close()
		})
	})
}
