// Package lora is meshd's host driver for RNode-compatible LoRa modems: the
// RNode host protocol (KISS framing, package kiss) over a serial port.
//
// A [Driver] owns one open port. [Start] runs the firmware's host start-up
// sequence and checks every value the modem echoes:
//
//  1. DETECT 0x73 (answered 0x46), FW_VERSION, PLATFORM, MCU, sent in one
//     write as Reticulum's host driver does, repeated until the modem answers
//     (an ESP32 modem reboots when the port opens);
//  2. FREQUENCY, BANDWIDTH, TXPOWER, SF, CR, ST_ALOCK and LT_ALOCK (the
//     airtime locks only when configured), RADIO_STATE on;
//  3. every echoed value must equal what was sent (frequency within 100 Hz,
//     as Reticulum allows); a difference is an [ErrEchoMismatch] naming the
//     field and both values, and the driver never transmits. The firmware
//     clamps TX power, SF and CR to what its radio supports, so an
//     unsupported setting shows up here rather than on air.
//
// After start-up:
//
//   - Received packets come out of [Driver.Packets] with the RSSI and SNR of
//     the STAT_RSSI and STAT_SNR frames the modem sends just before each
//     DATA frame (RSSI = byte - 157 dBm, SNR = signed byte / 4 dB).
//   - [Driver.Send] has a window of one frame: it writes DATA, waits the
//     frame's airtime (Config.Airtime), then asks READY (0x0F) until the
//     modem answers 0x01 (its queue has room). The firmware sends READY only
//     when asked, so the driver asks; it hands over no frame before the
//     modem said it has room. Room is not an empty queue: a modem waiting
//     for the channel keeps taking frames and then sends them back to back,
//     reading no serial meanwhile, so the wait for a READY answer is
//     Config.ReplyTimeout plus the airtime and CSMA wait (from SF, bandwidth
//     and CR) of the frames handed over recently, capped at
//     Config.MaxTxBacklog.
//   - Modem ERROR frames are mapped to errors ([ErrModem] with the code's
//     meaning). Radio initialisation failure, transmit failure (the firmware
//     reboots itself after it), EEPROM locked and unknown codes end the
//     driver; queue full fails the frame being sent; memory low and modem
//     timeout are counted and logged.
//   - The modem announces each boot (RESET 0xF8; opening the port reboots
//     an ESP32). During start-up that is expected, and a boot after the
//     settings were sent starts the sequence again (three times at most);
//     once configured it ends the driver.
//   - A modem that stops answering is found by a keepalive: when nothing
//     was asked for Config.Keepalive, the driver asks RADIO_STATE and wants
//     the answer (radio on) within Config.ReplyTimeout.
//   - A frame the modem begins and leaves unfinished for Config.FrameGap
//     is dropped rather than handed over truncated at the next FEND.
//   - Garbage, oversized frames and frame floods are counted, logged at most
//     once per Config.LogInterval, and never buffered beyond one frame of
//     kiss.MTU bytes and Config.RxQueue packets.
//
// A [Service] supervises a port: it opens it, starts a driver, reports the
// link up and down, and reopens it with jittered, capped exponential backoff
// when the modem is unplugged, reset or stops answering.
package lora
