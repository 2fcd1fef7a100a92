package lora

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"meshd.dev/meshd/transports/lora/kiss"
	"meshd.dev/meshd/transports/lora/loratest"
)

func testConfig() Config {
	return Config{FrequencyHz: 868_100_000, BandwidthHz: 125_000, TxPowerDBm: 14, SF: 9, CR: 5, Name: "test",
		Logger: slog.New(slog.DiscardHandler)}
}

// startFake runs a fake modem (bent by setup) and starts a driver on it.
func startFake(t *testing.T, cfg Config, setup func(*loratest.Modem)) (*loratest.Modem, *Driver, error) {
	t.Helper()
	m, host := loratest.New()
	if setup != nil {
		setup(m)
	}
	go m.Run()
	d, err := Start(context.Background(), host, cfg)
	if err != nil {
		host.Close()
	}
	return m, d, err
}

func TestStartupSendsFirmwareSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.LTALock = 100
		m, d, err := startFake(t, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var want []byte
		want = append(want, 0xC0, 0x08, 0x73, 0xC0, 0x50, 0x00, 0xC0, 0x48, 0x00, 0xC0, 0x49, 0x00, 0xC0)
		want = append(want, 0xC0, 0x01, 0x33, 0xBE, 0x27, 0xA0, 0xC0) // 868100000 Hz
		want = append(want, 0xC0, 0x02, 0x00, 0x01, 0xE8, 0x48, 0xC0) // 125000 Hz
		want = append(want, 0xC0, 0x03, 0x0E, 0xC0)                   // 14 dBm
		want = append(want, 0xC0, 0x04, 0x09, 0xC0)                   // SF9
		want = append(want, 0xC0, 0x05, 0x05, 0xC0)                   // 4/5
		want = append(want, 0xC0, 0x0C, 0x00, 0x64, 0xC0)             // LT_ALOCK 1 %
		want = append(want, 0xC0, 0x06, 0x01, 0xC0)                   // radio on
		if got := m.HostBytes(); !bytes.Equal(got, want) {
			t.Fatalf("host sent\n% X\nwant\n% X", got, want)
		}
		st := d.Stats()
		if st.Firmware != "1.86" || st.Platform != kiss.PlatformESP32 {
			t.Fatalf("stats firmware %q platform %#x", st.Firmware, st.Platform)
		}
	})
}

func TestStartupRefusesClampedTxPower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.TxPowerDBm = 22 // the fake, like an SX1276 board, clamps to 17
		m, _, err := startFake(t, cfg, nil)
		if !errors.Is(err, ErrEchoMismatch) {
			t.Fatalf("err = %v, want ErrEchoMismatch", err)
		}
		if !strings.Contains(err.Error(), "TX power: configured 22 dBm, modem applied 17 dBm") {
			t.Fatalf("error does not name the field and both values: %v", err)
		}
		for _, f := range m.HostFrames() {
			if f.Cmd == kiss.CmdData {
				t.Fatal("driver transmitted after a mismatch")
			}
		}
	})
}

func TestStartupWrongEchoes(t *testing.T) {
	cases := []struct {
		name string
		cmd  byte
		echo []byte
		want string
	}{
		{"frequency", kiss.CmdFrequency, loratest.Frame(kiss.CmdFrequency, kiss.U32(869_525_000)...), "frequency: configured 868100000 Hz, modem applied 869525000 Hz"},
		{"bandwidth", kiss.CmdBandwidth, loratest.Frame(kiss.CmdBandwidth, kiss.U32(250_000)...), "bandwidth: configured 125000 Hz, modem applied 250000 Hz"},
		{"sf", kiss.CmdSF, loratest.Frame(kiss.CmdSF, 12), "spreading factor: configured 9, modem applied 12"},
		{"cr", kiss.CmdCR, loratest.Frame(kiss.CmdCR, 8), "coding rate: configured 4/5, modem applied 4/8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, _, err := startFake(t, testConfig(), func(m *loratest.Modem) {
					m.Override[c.cmd] = func() []byte { return c.echo }
				})
				if !errors.Is(err, ErrEchoMismatch) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want ErrEchoMismatch with %q", err, c.want)
				}
			})
		})
	}
}

func TestStartupFrequencyWithin100Hz(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Override[kiss.CmdFrequency] = func() []byte { return loratest.Frame(kiss.CmdFrequency, kiss.U32(868_100_061)...) }
		})
		if err != nil {
			t.Fatalf("61 Hz off refused: %v", err)
		}
		d.Close()
	})
}

func TestStartupRadioInitFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Override[kiss.CmdRadioState] = func() []byte {
				return append(loratest.Frame(kiss.CmdError, kiss.ErrorInitRadio), loratest.Frame(kiss.CmdRadioState, 0)...)
			}
		})
		var me *ModemError
		if !errors.As(err, &me) || me.Code != kiss.ErrorInitRadio || !errors.Is(err, ErrModem) {
			t.Fatalf("err = %v, want modem error 0x01", err)
		}
	})
}

func TestStartupSilentModem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		_, _, err := startFake(t, testConfig(), func(m *loratest.Modem) { m.Silent = true })
		if !errors.Is(err, ErrNotDetected) {
			t.Fatalf("err = %v, want ErrNotDetected", err)
		}
		if el := time.Since(start); el < 5*time.Second || el > 6*time.Second {
			t.Fatalf("gave up after %v, want the 5 s detect timeout", el)
		}
	})
}

func TestStartupGarbageModem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, host := loratest.New()
		m.Silent = true
		go m.Run()
		go func() {
			junk := bytes.Repeat([]byte("\x11\x22ATZ\r\n"), 2000)
			for i := 0; i < 5; i++ {
				if _, err := m.Conn.Write(junk); err != nil {
					return
				}
			}
		}()
		_, err := Start(context.Background(), host, testConfig())
		if !errors.Is(err, ErrNotDetected) {
			t.Fatalf("err = %v, want ErrNotDetected", err)
		}
	})
}

func TestStartupWrongDetectAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, err := startFake(t, testConfig(), func(m *loratest.Modem) { m.DetectResp = 0x00 })
		if !errors.Is(err, ErrNotDetected) {
			t.Fatalf("err = %v, want ErrNotDetected", err)
		}
	})
}

func TestStartupOldFirmware(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, err := startFake(t, testConfig(), func(m *loratest.Modem) { m.Firmware = [2]byte{1, 40} })
		if !errors.Is(err, ErrFirmware) || !strings.Contains(err.Error(), "1.40") {
			t.Fatalf("err = %v, want ErrFirmware naming 1.40", err)
		}
	})
}

func TestStartupMissingEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Override[kiss.CmdCR] = func() []byte { return nil }
		})
		if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "CR") {
			t.Fatalf("err = %v, want ErrNoAnswer naming CR", err)
		}
	})
}

func TestReceiveCarriesRSSIAndSNR(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		m.Receive([]byte{0xC0, 0xDB, 1}, -97, -7.25)
		p := <-d.Packets()
		if !bytes.Equal(p.Data, []byte{0xC0, 0xDB, 1}) || !p.HasSignal || p.RSSI != -97 || p.SNR != -7.25 {
			t.Fatalf("packet = %+v", p)
		}
		// A DATA frame without a signal report does not reuse the last one.
		m.Send(loratest.Frame(kiss.CmdData, 7))
		p = <-d.Packets()
		if p.HasSignal {
			t.Fatalf("packet without STAT frames has signal %+v", p)
		}
		if st := d.Stats(); st.RxFrames != 2 || st.LastRSSI != -97 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestSendWaitsForReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Airtime = func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
		answers := []byte{0, 0, 1}
		m, d, err := startFake(t, cfg, func(m *loratest.Modem) {
			m.Ready = func() byte { a := answers[0]; answers = answers[1:]; return a }
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		start := time.Now()
		if err := d.Send(context.Background(), []byte{1, 2, 0xC0}); err != nil {
			t.Fatal(err)
		}
		// 3 ms of airtime, then two 100 ms pauses while the queue was full.
		if el := time.Since(start); el != 203*time.Millisecond {
			t.Fatalf("Send took %v, want 203ms", el)
		}
		var cmds []byte
		for _, f := range m.HostFrames() {
			cmds = append(cmds, f.Cmd)
		}
		tail := cmds[len(cmds)-4:]
		if !bytes.Equal(tail, []byte{kiss.CmdData, kiss.CmdReady, kiss.CmdReady, kiss.CmdReady}) {
			t.Fatalf("host commands end % X", tail)
		}
		if !bytes.Contains(m.HostBytes(), []byte{0xC0, 0x00, 1, 2, 0xDB, 0xDC, 0xC0, 0xC0, 0x0F, 0x00, 0xC0}) {
			t.Fatal("DATA and READY bytes not as the firmware expects")
		}
		if st := d.Stats(); st.TxFrames != 1 || st.TxBytes != 3 || st.ReadyNo != 2 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestSendRejectsBadSizes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for _, n := range []int{0, kiss.MTU + 1} {
			if err := d.Send(context.Background(), make([]byte, n)); !errors.Is(err, ErrFrameSize) {
				t.Fatalf("Send(%d bytes) = %v, want ErrFrameSize", n, err)
			}
		}
	})
}

func TestSendNoReadyAnswerEndsDriver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Override[kiss.CmdReady] = func() []byte { return nil }
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Send(context.Background(), []byte{1}); !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("Send = %v, want ErrNoAnswer", err)
		}
		<-d.Done()
		if !errors.Is(d.Err(), ErrNoAnswer) {
			t.Fatalf("driver ended with %v", d.Err())
		}
	})
}

func TestSendQueueStaysFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Ready = func() byte { return kiss.ReadyNo }
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Send(context.Background(), []byte{1}); !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("Send = %v, want ErrNoAnswer after TxTimeout", err)
		}
	})
}

func TestModemQueueFullErrorFailsFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.OnData = func([]byte) { go m.Send(loratest.Frame(kiss.CmdError, kiss.ErrorQueueFull)) }
			m.Override[kiss.CmdReady] = func() []byte { return nil }
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		err = d.Send(context.Background(), []byte{1})
		if !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Send = %v, want ErrQueueFull", err)
		}
		if d.Err() != nil {
			t.Fatalf("queue full ended the driver: %v", d.Err())
		}
	})
}

func TestModemErrors(t *testing.T) {
	cases := []struct {
		code  byte
		fatal bool
	}{
		{kiss.ErrorInitRadio, true}, {kiss.ErrorTxFailed, true}, {kiss.ErrorEEPROMLocked, true},
		{kiss.ErrorMemoryLow, false}, {kiss.ErrorModemTimeout, false}, {0x77, true},
	}
	for _, c := range cases {
		synctest.Test(t, func(t *testing.T) {
			m, d, err := startFake(t, testConfig(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			m.Send(loratest.Frame(kiss.CmdError, c.code))
			m.Receive([]byte{9}, -100, 5) // a marker: the error was handled before it
			synctest.Wait()
			if c.fatal {
				<-d.Done()
				var me *ModemError
				if !errors.As(d.Err(), &me) || me.Code != c.code {
					t.Fatalf("code 0x%02X: driver ended with %v", c.code, d.Err())
				}
				return
			}
			<-d.Packets()
			if d.Err() != nil {
				t.Fatalf("code 0x%02X ended the driver: %v", c.code, d.Err())
			}
			if st := d.Stats(); st.ModemErrors[c.code] != 1 {
				t.Fatalf("code 0x%02X not counted: %v", c.code, st.ModemErrors)
			}
		})
	}
}

func TestFrameFloodIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.RxQueue = 8
		m, d, err := startFake(t, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		big := bytes.Repeat([]byte{0xC0}, kiss.MTU) // worst case: every byte escaped
		for i := 0; i < 500; i++ {
			m.Receive(big, -80, 10)
		}
		// Oversized frames are dropped, not buffered.
		m.Send(append(append([]byte{0xC0, 0x00}, bytes.Repeat([]byte{1}, 5*kiss.MTU)...), 0xC0))
		// The link still works: READY is read behind the flood.
		if err := d.Send(context.Background(), []byte{1}); err != nil {
			t.Fatalf("Send after flood: %v", err)
		}
		st := d.Stats()
		if st.RxFrames != 8 || st.RxDropped != 492 || st.DecodeErrors != 1 {
			t.Fatalf("stats after flood: rx %d dropped %d decode errors %d", st.RxFrames, st.RxDropped, st.DecodeErrors)
		}
		if len(d.Packets()) != 8 {
			t.Fatalf("%d packets queued, want the bound 8", len(d.Packets()))
		}
	})
}

func TestPortVanishing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Conn.Close() // unplugged
		<-d.Done()
		if !errors.Is(d.Err(), ErrPort) {
			t.Fatalf("driver ended with %v, want ErrPort", d.Err())
		}
		if err := d.Send(context.Background(), []byte{1}); !errors.Is(err, ErrPort) {
			t.Fatalf("Send on a vanished port = %v", err)
		}
		if _, ok := <-d.Packets(); ok {
			t.Fatal("Packets not closed")
		}
	})
}

func TestKeepaliveFindsHungModem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		_, d, err := startFake(t, testConfig(), func(m *loratest.Modem) { m.StopAfter = 10 }) // answers the 10 start-up frames only
		if err != nil {
			t.Fatal(err)
		}
		<-d.Done()
		if !errors.Is(d.Err(), ErrNoAnswer) || !strings.Contains(d.Err().Error(), "RADIO_STATE") {
			t.Fatalf("driver ended with %v", d.Err())
		}
		if el := time.Since(start); el != 32*time.Second {
			t.Fatalf("hang noticed after %v, want keepalive 30 s + reply timeout 2 s", el)
		}
	})
}

func TestKeepaliveQuietModemStaysUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		time.Sleep(10 * time.Minute)
		if d.Err() != nil {
			t.Fatalf("an answering modem was dropped: %v", d.Err())
		}
	})
}

func TestSettingChangedAfterStartup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Send(loratest.Frame(kiss.CmdSF, 12)) // someone reconfigured the modem
		<-d.Done()
		if !errors.Is(d.Err(), ErrEchoMismatch) {
			t.Fatalf("driver ended with %v", d.Err())
		}
		if err := d.Send(context.Background(), []byte{1}); err == nil {
			t.Fatal("Send succeeded after a mismatch")
		}
	})
}

// TestResetAtBootIsExpected: an ESP32 modem reboots when the port opens
// and announces it (55 F8) before answering; that must not fail start-up.
func TestResetAtBootIsExpected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := true
		_, d, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Override[kiss.CmdDetect] = func() []byte {
				b := loratest.Frame(kiss.CmdDetect, kiss.DetectResp)
				if first {
					first = false
					b = append(loratest.Frame(kiss.CmdReset, kiss.ResetByte), b...)
				}
				return b
			}
		})
		if err != nil {
			t.Fatalf("start-up failed on a boot announcement: %v", err)
		}
		d.Close()
	})
}

// TestResetDuringConfigurationConfiguresAgain: a reboot announced after
// the settings were sent means the modem forgot them: start-up detects and
// configures again.
func TestResetDuringConfigurationConfiguresAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sfs := 0
		m, d, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Override[kiss.CmdSF] = func() []byte {
				sfs++
				b := loratest.Frame(kiss.CmdSF, 9)
				if sfs == 1 {
					b = append(b, loratest.Frame(kiss.CmdReset, kiss.ResetByte)...)
				}
				return b
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		freqs := 0
		for _, f := range m.HostFrames() {
			if f.Cmd == kiss.CmdFrequency {
				freqs++
			}
		}
		if freqs != 2 || sfs != 2 {
			t.Fatalf("configured %d times (SF %d), want 2", freqs, sfs)
		}
	})
}

// TestResetLoopGivesUp: a modem that reboots every time it is configured
// is given up on after three attempts.
func TestResetLoopGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, err := startFake(t, testConfig(), func(m *loratest.Modem) {
			m.Override[kiss.CmdSF] = func() []byte {
				return append(loratest.Frame(kiss.CmdSF, 9), loratest.Frame(kiss.CmdReset, kiss.ResetByte)...)
			}
		})
		if !errors.Is(err, ErrModemReset) {
			t.Fatalf("err = %v, want ErrModemReset", err)
		}
	})
}

func TestModemResetEndsDriver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Send(loratest.Frame(kiss.CmdReset, kiss.ResetByte))
		<-d.Done()
		if !errors.Is(d.Err(), ErrModemReset) {
			t.Fatalf("driver ended with %v", d.Err())
		}
	})
}

func TestCloseSendsLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		synctest.Wait()
		fs := m.HostFrames()
		if last := fs[len(fs)-1]; last.Cmd != kiss.CmdLeave || !bytes.Equal(last.Data, []byte{0xFF}) {
			t.Fatalf("last host frame %+v, want LEAVE 0xFF", last)
		}
		if !errors.Is(d.Err(), ErrClosed) {
			t.Fatalf("Err = %v", d.Err())
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.FrequencyHz = 100 }, "frequency"},
		{func(c *Config) { c.BandwidthHz = 100_000 }, "bandwidth"},
		{func(c *Config) { c.SF = 13 }, "spreading factor"},
		{func(c *Config) { c.CR = 4 }, "coding rate"},
		{func(c *Config) { c.TxPowerDBm = 40 }, "TX power"},
		{func(c *Config) { c.LTALock = 10000 }, "airtime locks"},
	} {
		cfg := testConfig()
		c.mod(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want ErrConfig about %s", err, c.want)
		}
	}
}

// countHandler counts log records by level.
type countHandler struct {
	mu   *sync.Mutex
	warn *int
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.mu.Lock()
		*h.warn++
		h.mu.Unlock()
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

func TestFloodLogsOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		warns := 0
		cfg := testConfig()
		cfg.RxQueue = 1
		cfg.Logger = slog.New(countHandler{&mu, &warns})
		m, d, err := startFake(t, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for i := 0; i < 200; i++ {
			m.Receive([]byte{1}, -90, 1)
		}
		time.Sleep(61 * time.Second)
		for i := 0; i < 200; i++ {
			m.Receive([]byte{1}, -90, 1)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if warns != 2 {
			t.Fatalf("%d warnings for 398 drops over two minutes, want 2 (one per interval)", warns)
		}
		if st := d.Stats(); st.RxDropped != 399 {
			t.Fatalf("dropped %d, want 399", st.RxDropped)
		}
	})
}

// TestUnfinishedFrameDropped: a frame the modem began and left unfinished
// is dropped after FrameGap, not glued to what comes next (the next FEND
// would otherwise hand it over as a short packet).
func TestUnfinishedFrameDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		m.Send([]byte{kiss.FEND, kiss.CmdData, 0xAA, 0xBB}) // and then the modem hangs a moment
		time.Sleep(time.Second)
		m.Receive([]byte{1, 2, 3}, -90, 1)
		p := <-d.Packets()
		if !bytes.Equal(p.Data, []byte{1, 2, 3}) {
			t.Fatalf("got packet % X, want 01 02 03", p.Data)
		}
		synctest.Wait()
		if n := len(d.Packets()); n != 0 {
			t.Fatalf("%d more packets", n)
		}
		if st := d.Stats(); st.DecodeErrors != 1 {
			t.Fatalf("decode errors %d", st.DecodeErrors)
		}
	})
}

// blockingPort never takes a write: a modem whose USB side stopped reading.
type blockingPort struct {
	io.Reader
	unblock chan struct{}
}

func (b blockingPort) Write(p []byte) (int, error) { <-b.unblock; return 0, io.ErrClosedPipe }
func (b blockingPort) Close() error                { return nil }

// TestCloseDoesNotHangOnStuckPort: Close gives up on LEAVE after a moment
// when the port takes no writes, so the daemon is not held up.
func TestCloseDoesNotHangOnStuckPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := configuredDriver()
		bp := blockingPort{Reader: bytes.NewReader(nil), unblock: make(chan struct{})}
		d.port = bp
		start := time.Now()
		d.Close()
		if el := time.Since(start); el != leaveWait {
			t.Fatalf("Close took %v", el)
		}
		if !errors.Is(d.Err(), ErrClosed) {
			t.Fatalf("Err = %v", d.Err())
		}
		close(bp.unblock)
	})
}

// stuckPort stops taking writes when stuck is set: the modem's USB side
// no longer reads.
type stuckPort struct {
	io.ReadWriteCloser
	stuck   *atomic.Bool
	unblock chan struct{}
}

func (s stuckPort) Write(p []byte) (int, error) {
	if s.stuck.Load() {
		<-s.unblock
		return 0, io.ErrClosedPipe
	}
	return s.ReadWriteCloser.Write(p)
}

// TestStuckWritesEndDriver: a modem that stops reading blocks the port's
// writes; Send and the keepalive must not wait for ever behind them.
func TestStuckWritesEndDriver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, host := loratest.New()
		go m.Run()
		var stuck atomic.Bool
		unblock := make(chan struct{})
		d, err := Start(context.Background(), stuckPort{host, &stuck, unblock}, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		stuck.Store(true)
		start := time.Now()
		if err := d.Send(context.Background(), []byte{1}); !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("Send = %v, want ErrNoAnswer", err)
		}
		if el := time.Since(start); el != 2*time.Second {
			t.Fatalf("gave up after %v, want the 2 s reply timeout", el)
		}
		<-d.Done()
		close(unblock)
		m.Conn.Close()
	})
}

// The firmware reads no serial while it sends its queue: a modem that held
// four frames (waiting for the channel) and then sends them back to back
// answers the READY question only after all four, 4 x 1.2 s later. That
// is a busy modem, not a dead one: the driver must wait for it.
func TestSendWaitsOutQueuedAirtime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const air = 1200 * time.Millisecond // a 200-byte frame at SF9/125 kHz
		cfg := testConfig()
		cfg.Airtime = func(int) time.Duration { return air }
		var queued int
		end := make(chan struct{})
		defer close(end) // a failed test leaves no modem asleep in the bubble
		_, d, err := startFake(t, cfg, func(m *loratest.Modem) {
			m.OnData = func([]byte) { queued++ }
			m.Override[kiss.CmdReady] = func() []byte {
				if queued == 4 { // the channel is free: send the queue
					select {
					case <-time.After(time.Duration(queued) * air):
					case <-end:
					}
					queued = 0
				}
				return loratest.Frame(kiss.CmdReady, kiss.ReadyYes)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for i := range 4 {
			if err := d.Send(context.Background(), make([]byte, 200)); err != nil {
				t.Fatalf("frame %d: %v (driver %v)", i, err, d.Err())
			}
		}
		if d.Err() != nil {
			t.Fatalf("driver ended: %v", d.Err())
		}
	})
}

// A modem that stays silent still ends the driver, within the cap.
func TestReadyTimeoutIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.Airtime = func(int) time.Duration { return 10 * time.Second }
		cfg.MaxTxBacklog = 5 * time.Second
		_, d, err := startFake(t, cfg, func(m *loratest.Modem) {
			m.Override[kiss.CmdReady] = func() []byte { return nil }
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := d.Send(context.Background(), make([]byte, 200)); !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("Send = %v, want ErrNoAnswer", err)
		}
		// 10 s of airtime, then ReplyTimeout (2 s) + the backlog (10 s of
		// airtime and 3.185 s of channel access) capped at 5 s.
		if el := time.Since(start); el != 10*time.Second+2*time.Second+5*time.Second {
			t.Fatalf("gave up after %v, want 17s", el)
		}
	})
}

func TestReadyTimeoutFromRadioSettings(t *testing.T) {
	cfg := testConfig() // SF9, 125 kHz: 4.096 ms symbols, 49 ms CSMA slots
	d := &Driver{cfg: cfg.withDefaults()}
	// DIFS (2 slots) + the widest contention window (60) + the yield
	// after a transmission (3): 65 slots of 49 ms.
	if got := d.accessWait(); got != 65*49*time.Millisecond {
		t.Fatalf("access wait at SF9/125 kHz = %v, want %v", got, 65*49*time.Millisecond)
	}
	cfg.SF, cfg.BandwidthHz = 7, 500_000 // 21.9 kbit/s: the 24 ms minimum slot
	d = &Driver{cfg: cfg.withDefaults()}
	if got := d.accessWait(); got != 65*24*time.Millisecond {
		t.Fatalf("access wait at SF7/500 kHz = %v, want %v", got, 65*24*time.Millisecond)
	}
	cfg.SF = 5 // 62.5 kbit/s, "fast": the minimum slot is 6 ms
	d = &Driver{cfg: cfg.withDefaults()}
	if got := d.accessWait(); got != 65*6*time.Millisecond {
		t.Fatalf("access wait at SF5/500 kHz = %v, want %v", got, 65*6*time.Millisecond)
	}
}

// TestStaleSignalReport: the firmware sends STAT_RSSI and STAT_SNR right
// before the DATA frame they describe. A report followed by silence (a
// frame lost to a decode error, a modem sending reports alone) must not
// be pinned on a packet that arrives much later: the routing engine uses
// the SNR.
func TestStaleSignalReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, d, err := startFake(t, testConfig(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		m.Send(loratest.Frame(kiss.CmdStatRSSI, 60))
		m.Send(loratest.Frame(kiss.CmdStatSNR, 20))
		time.Sleep(time.Minute)
		m.Send(loratest.Frame(kiss.CmdData, 7))
		if p := <-d.Packets(); p.HasSignal {
			t.Fatalf("a packet a minute after a lone signal report carries it: %+v", p)
		}
	})
}

// TestModemStopsReading: a hung modem stops reading its serial line; the
// host's next write blocks. The driver must notice within its reply
// timeout and end (so the link goes down and Close does not wait on the
// write), not hang with the link "up" for ever. (Real time: a blocked
// pipe write is not a durable block for synctest.)
func TestModemStopsReading(t *testing.T) {
	stuck := make(chan struct{})
	cfg := testConfig()
	cfg.ReplyTimeout = 50 * time.Millisecond
	_, d, err := startFake(t, cfg, func(m *loratest.Modem) {
		m.OnData = func([]byte) { <-stuck } // the modem hangs on the first packet
	})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- d.Send(context.Background(), []byte{1}) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Send to a modem that stopped reading succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Error("Send still blocked 20 s after the modem stopped reading (reply timeout 50 ms)")
		close(stuck)
		<-errc
		d.Close()
		return
	}
	close(stuck)
	d.Close()
}
