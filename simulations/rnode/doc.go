// Package rnode emulates RNode LoRa modems: each speaks the RNode host
// protocol on its serial line, byte for byte as the RNode firmware (1.86,
// ESP32 with an SX1276) does, and all of them share one radio medium from
// meshd.dev/meshd/simulations/radio, the model meshsim uses, in real time.
// The rnode-emu command (simulations/cmd/rnode-emu) puts each modem on a
// pseudo-terminal, so real host drivers (meshd's, Reticulum's) talk to it as
// to hardware.
//
// What is emulated, as the firmware does it:
//
//   - the serial parser (serial_callback): a FEND ends a DATA frame or
//     starts a new frame; the command byte; one-byte commands act on every
//     argument byte; the escape state is shared by all commands and kept
//     across frames;
//   - DETECT (0x73 answered 0x46), FW_VERSION, PLATFORM, MCU, BOARD;
//   - the settings and their echoes: FREQUENCY and BANDWIDTH (0 queries),
//     TXPOWER (clamped to 17 dBm), SF (5..12), CR (5..8), ST_ALOCK and
//     LT_ALOCK (percent x 100, echoed through the firmware's float
//     arithmetic), RADIO_STATE (on only when frequency, bandwidth, power and
//     SF are set; the echo is sent twice when turning on, as the firmware
//     does, after three STAT_PHYPRM reports); with the radio on the chip
//     quantises the frequency to 32 MHz / 2^19 steps and the bandwidth to an
//     SX1276 bandwidth, and the echoes say so;
//   - the transmit queue (6144 bytes, 200 packets; bytes past it are lost),
//     READY (answered 0x01 while the queue has room, 0x00 when full; the
//     firmware never sends it unasked, nor ERROR_QUEUE_FULL);
//   - channel access (ESP32 CSMA: wait for no carrier, a DIFS of two slots,
//     a random contention window), then the whole queue sent back to back
//     (one packet per access above 14 kbit/s), with no serial input read
//     while sending;
//   - the on-air format: a header byte (random sequence nibble, split
//     flag) before each frame; a packet over 254 bytes as two frames
//     (exactly 508 bytes as three, the last holding only the header, as the
//     firmware's loop does); reassembly at the receiver;
//   - STAT_RSSI and STAT_SNR before each received DATA, from the medium's
//     received power and SNR through the SX1276 registers and the driver's
//     arithmetic;
//   - airtime: 480 bins of 7.5 s, the firmware's cost formula, the
//     airtime locks (a locked modem holds its queue), STAT_CHTM about every
//     second with the radio on and after each transmission, STAT_CSMA when
//     the contention window band changes;
//   - the preamble (18 symbols, more at fast rates, the register holding 4
//     less) and the low-data-rate rule of the driver (off at SF11/125 kHz);
//   - errors: ERROR_EEPROM_LOCKED for a ROM write, and on demand
//     ([Hub.Fault]) ERROR_INITRADIO, ERROR_MODEM_TIMEOUT + ERROR_TXFAILED
//     followed by a reboot, ERROR_MEMORY_LOW; a RESET frame at every boot.
//
// Not emulated: the EEPROM and everything rnodeconf does with it, display,
// Bluetooth, Wi-Fi, battery, implicit-header reception, interference
// detection below the carrier threshold. The host's TXPOWER is echoed but
// the range comes from each modem's configured power.
//
// A [Hub] runs on an injected [Clock]: the wall clock in the emulator,
// virtual time in tests (testing/synctest), where the same code runs with
// exact airtime and no waiting.
package rnode
