package kiss

import (
	"encoding/binary"
	"fmt"
)

// RNode host protocol commands, as the RNode firmware defines them. Host to modem
// and modem to host use the same codes; a set command is answered with the
// value the modem applied.
const (
	CmdData       byte = 0x00 // a packet (up to MTU bytes; the modem splits)
	CmdFrequency  byte = 0x01 // 4 bytes big-endian Hz; 0 queries
	CmdBandwidth  byte = 0x02 // 4 bytes big-endian Hz; 0 queries
	CmdTxPower    byte = 0x03 // 1 byte dBm (clamped by the firmware); 0xFF queries
	CmdSF         byte = 0x04 // 1 byte 5..12 (clamped); 0xFF queries
	CmdCR         byte = 0x05 // 1 byte 5..8 for 4/5..4/8 (clamped); 0xFF queries
	CmdRadioState byte = 0x06 // RadioStateOff, RadioStateOn, 0xFF queries
	CmdRadioLock  byte = 0x07
	CmdDetect     byte = 0x08 // host sends DetectReq, modem answers DetectResp
	CmdImplicit   byte = 0x09
	CmdLeave      byte = 0x0A // host sends 0xFF when it lets go of the modem
	CmdSTALock    byte = 0x0B // 2 bytes big-endian: short-term airtime limit, percent x 100
	CmdLTALock    byte = 0x0C // 2 bytes big-endian: long-term (hour) airtime limit, percent x 100
	CmdPromisc    byte = 0x0E
	CmdReady      byte = 0x0F // host asks; modem answers 0x01 (queue has room) or 0x00

	CmdStatRX     byte = 0x21 // 4 bytes big-endian counter
	CmdStatTX     byte = 0x22 // 4 bytes big-endian counter
	CmdStatRSSI   byte = 0x23 // 1 byte: RSSI + RSSIOffset, sent just before each received DATA
	CmdStatSNR    byte = 0x24 // 1 byte: signed SNR in quarter dB, sent just before each received DATA
	CmdStatChTm   byte = 0x25 // 11 bytes: ChannelStats
	CmdStatPhyPrm byte = 0x26 // 12 bytes: PHY parameters
	CmdStatBat    byte = 0x27
	CmdStatCSMA   byte = 0x28 // 3 bytes: contention window band, min, max
	CmdStatTemp   byte = 0x29
	CmdBlink      byte = 0x30
	CmdRandom     byte = 0x40

	CmdBoard     byte = 0x47
	CmdPlatform  byte = 0x48 // 1 byte, see Platform*
	CmdMCU       byte = 0x49 // 1 byte
	CmdFWVersion byte = 0x50 // 2 bytes: major, minor
	CmdReset     byte = 0x55 // with ResetByte; the modem also announces a reset with it
	CmdError     byte = 0x90 // 1 byte error code, see Error*
)

// Command arguments.
const (
	DetectReq  byte = 0x73
	DetectResp byte = 0x46

	RadioStateOff    byte = 0x00
	RadioStateOn     byte = 0x01
	QueryByte        byte = 0xFF // asks for the current value of a 1-byte setting
	LeaveByte        byte = 0xFF
	ResetByte        byte = 0xF8
	ReadyYes         byte = 0x01
	ReadyNo          byte = 0x00
	NoInterference   byte = 0xFF // ChannelStats.Interference when none was detected
	PlatformAVR      byte = 0x90
	PlatformESP32    byte = 0x80
	PlatformNRF52    byte = 0x70
	RSSIOffset            = 157 // dBm = byte - RSSIOffset
	MinFirmwareMajor      = 1   // Reticulum's minimum, 1.52
	MinFirmwareMinor      = 52
)

// Modem error codes (argument of CmdError).
const (
	ErrorInitRadio    byte = 0x01
	ErrorTxFailed     byte = 0x02
	ErrorEEPROMLocked byte = 0x03
	ErrorQueueFull    byte = 0x04
	ErrorMemoryLow    byte = 0x05
	ErrorModemTimeout byte = 0x06
)

// Sizes, as the RNode firmware defines them.
const (
	// MTU is the largest DATA payload the modem takes from the host: it
	// sends more than SingleMTU-HeaderLen bytes as two LoRa frames, each
	// with its own 1-byte header (random sequence nibble, split flag).
	MTU = 508
	// SingleMTU is the largest LoRa frame, header included.
	SingleMTU = 255
	// HeaderLen is the modem's own header on every LoRa frame.
	HeaderLen = 1
	// MaxHostFrame is the largest data part of any frame the modem sends
	// the host in normal operation (DATA); decoders size for it.
	MaxHostFrame = MTU
	// FlagSplit in the on-air header marks a packet sent as two LoRa
	// frames; the high nibble (SeqMask) is a random sequence number shared
	// by both halves.
	FlagSplit byte = 0x01
	SeqMask   byte = 0xF0
)

// ErrorText names a modem error code.
func ErrorText(code byte) string {
	switch code {
	case ErrorInitRadio:
		return "radio initialisation failed"
	case ErrorTxFailed:
		return "transmit failed"
	case ErrorEEPROMLocked:
		return "EEPROM locked"
	case ErrorQueueFull:
		return "modem queue full"
	case ErrorMemoryLow:
		return "modem memory exhausted"
	case ErrorModemTimeout:
		return "radio chip communication timed out"
	}
	return fmt.Sprintf("unknown modem error 0x%02X", code)
}

// RSSIFromByte decodes CmdStatRSSI.
func RSSIFromByte(b byte) int { return int(b) - RSSIOffset }

// RSSIByte encodes an RSSI in dBm as the firmware does: (uint8)(dBm+157),
// which wraps below -157 dBm and above 98 dBm.
func RSSIByte(dbm int) byte { return byte(dbm + RSSIOffset) }

// SNRFromByte decodes CmdStatSNR to dB.
func SNRFromByte(b byte) float64 { return float64(int8(b)) * 0.25 }

// SNRByte encodes an SNR in dB, clamped to what a signed byte of quarter
// decibels holds (-32 .. +31.75 dB).
func SNRByte(db float64) byte {
	q := db * 4
	switch {
	case q < -128:
		q = -128
	case q > 127:
		q = 127
	}
	if q < 0 {
		return byte(int8(q - 0.5))
	}
	return byte(int8(q + 0.5))
}

// U32 encodes a 4-byte big-endian argument (frequency, bandwidth).
func U32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// U16 encodes a 2-byte big-endian argument (airtime locks).
func U16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// ChannelStats is the CmdStatChTm report (ESP32 and nRF52 modems send it
// after each transmit burst, when their queue is empty again, and about
// every second while the radio is on; not after each received packet).
// Airtime and load are percent x 100 over the
// last 15 s ("short") and hour ("long"); RSSI values are raw bytes (dBm +
// RSSIOffset).
type ChannelStats struct {
	AirtimeShort, AirtimeLong uint16
	LoadShort, LoadLong       uint16
	CurrentRSSI, NoiseFloor   byte
	Interference              byte // NoInterference if none
}

// ChannelStatsLen is the size of an encoded ChannelStats.
const ChannelStatsLen = 11

// Marshal encodes the report.
func (c ChannelStats) Marshal() []byte {
	b := make([]byte, 0, ChannelStatsLen)
	for _, v := range []uint16{c.AirtimeShort, c.AirtimeLong, c.LoadShort, c.LoadLong} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return append(b, c.CurrentRSSI, c.NoiseFloor, c.Interference)
}

// ParseChannelStats decodes a CmdStatChTm report.
func ParseChannelStats(data []byte) (ChannelStats, error) {
	if len(data) != ChannelStatsLen {
		return ChannelStats{}, fmt.Errorf("%w: channel stats want %d bytes, got %d", ErrShortArg, ChannelStatsLen, len(data))
	}
	u := func(i int) uint16 { return binary.BigEndian.Uint16(data[i:]) }
	return ChannelStats{
		AirtimeShort: u(0), AirtimeLong: u(2), LoadShort: u(4), LoadLong: u(6),
		CurrentRSSI: data[8], NoiseFloor: data[9], Interference: data[10],
	}, nil
}
