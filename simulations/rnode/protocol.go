package rnode

// The RNode host protocol, as the firmware defines it (Framing.h of
// markqvist/RNode_Firmware): KISS framing over a serial line, one command
// byte after the opening FEND, then its argument bytes.
const (
	FEND  = 0xC0 // frame delimiter
	FESC  = 0xDB // escape
	TFEND = 0xDC // escaped FEND
	TFESC = 0xDD // escaped FESC
)

// Commands. The host sends them, and the modem answers or reports with the
// same code.
const (
	CmdData       = 0x00 // a packet to send, or one received
	CmdFrequency  = 0x01 // 4 bytes big-endian Hz; 0 queries
	CmdBandwidth  = 0x02 // 4 bytes big-endian Hz; 0 queries
	CmdTxPower    = 0x03 // 1 byte dBm; 0xFF queries
	CmdSF         = 0x04 // 1 byte spreading factor; 0xFF queries
	CmdCR         = 0x05 // 1 byte coding rate denominator 5..8; 0xFF queries
	CmdRadioState = 0x06 // 0x00 off, 0x01 on, 0xFF queries
	CmdRadioLock  = 0x07 // reports whether the radio is locked (settings missing)
	CmdDetect     = 0x08 // host sends DetectReq, modem answers DetectResp
	CmdImplicit   = 0x09 // implicit header length (0: explicit)
	CmdLeave      = 0x0A // the host leaves (0xFF)
	CmdSTALock    = 0x0B // short-term airtime limit, percent x 100, 2 bytes
	CmdLTALock    = 0x0C // long-term airtime limit, percent x 100, 2 bytes
	CmdPromisc    = 0x0E // promiscuous mode 0x00/0x01
	CmdReady      = 0x0F // host asks; modem answers 0x01 (queue has room) or 0x00
	CmdStatRX     = 0x21 // received packet counter, 4 bytes
	CmdStatTX     = 0x22 // sent packet counter, 4 bytes
	CmdStatRSSI   = 0x23 // RSSI + 157, sent before each received packet
	CmdStatSNR    = 0x24 // SNR x 4, signed, sent before each received packet
	CmdStatCHTM   = 0x25 // channel statistics, 11 bytes
	CmdStatPHYPRM = 0x26 // physical-layer parameters, 12 bytes
	CmdStatCSMA   = 0x28 // contention window band, min, max
	CmdBlink      = 0x30
	CmdRandom     = 0x40 // a random byte
	CmdBoard      = 0x47
	CmdPlatform   = 0x48
	CmdMCU        = 0x49
	CmdFWVersion  = 0x50 // major, minor
	CmdROMRead    = 0x51
	CmdROMWrite   = 0x52 // address, byte
	CmdReset      = 0x55 // with ResetByte: reboot; the modem sends it at boot
	CmdError      = 0x90 // one error code byte
	cmdUnknown    = 0xFE // parser state: no command byte yet
)

// Argument values.
const (
	DetectReq     = 0x73
	DetectResp    = 0x46
	ResetByte     = 0xF8
	RadioStateOff = 0x00
	RadioStateOn  = 0x01
)

// Error codes of CmdError.
const (
	ErrorInitRadio    = 0x01 // the radio failed to start
	ErrorTxFailed     = 0x02 // a transmission failed (the modem then reboots)
	ErrorEEPROMLocked = 0x03 // a ROM write to the locked EEPROM
	ErrorQueueFull    = 0x04 // defined by the firmware, never sent by it
	ErrorMemoryLow    = 0x05 // a received packet was dropped for want of memory
	ErrorModemTimeout = 0x06 // the radio did not finish a transmission
)

// Limits and constants of the firmware (Config.h, Boards.h for ESP32).
const (
	// MTU is the largest packet the host may send: two LoRa frames of 254
	// payload bytes each behind a 1-byte split header.
	MTU = 508
	// SingleMTU is the largest LoRa frame.
	SingleMTU      = 255
	headerLen      = 1
	cmdL           = 64   // command argument buffer
	queueSize      = 6144 // transmit queue, bytes
	queueMaxLength = 200  // transmit queue, packets
	rssiOffset     = 157
	flagSplit      = 0x01
	seqUnset       = 0xFF
)
