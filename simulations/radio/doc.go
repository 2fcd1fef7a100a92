// Package radio holds meshsim's models of the LoRa physical layer: the
// modulation parameters and their time on air (the Semtech formula), the
// log-distance path-loss model with static per-link shadowing, receiver
// sensitivity and noise, a shared medium that decides for every receiver
// whether a frame survived (half-duplex radios, sensitivity and SNR floor,
// same-channel collisions with the capture effect and the preamble rule),
// and EU868 duty-cycle accounting per sub-band.
//
// The package is pure and deterministic, like the engines the simulator
// drives: it starts no goroutines, never reads the wall clock (every time is
// a parameter) and draws randomness only from a *rand.Rand supplied by the
// caller. The same inputs give the same outputs, bit for bit, whatever the
// order in which independent questions are asked (per-link shadowing is a
// hash of a key drawn once from the caller's generator, not a stream of
// draws).
//
// The pieces, and where their numbers come from:
//
//   - [Params] and [Params.TimeOnAir]: Semtech AN1200.13 and the SX1276
//     datasheet, section 4.1.1.7, with the low-data-rate rule (on when a
//     symbol lasts more than 16 ms). Times are exact to the nanosecond.
//   - [PathLoss] and [Model]: by default log-distance path loss with
//     log-normal shadowing, 127.41 dB at 40 m, exponent 2.08, sigma 3.57 dB
//     (Bor et al., as used by LoRaSim and ns-3's lorawan module); free
//     space, two-ray ground, Okumura-Hata and COST-231-Hata with antenna
//     heights ([PathLossKind]); thermal noise -174 dBm/Hz plus a 6 dB noise
//     figure; sensitivity per SF from the SX1272 (default) or SX1276
//     datasheet and the demodulation SNR floor from the SX1276 datasheet,
//     both at 125 kHz, sensitivity scaled by 10 log10(BW/125 kHz).
//   - Optional reception models of the [Medium]: per-frame Rayleigh or
//     Rician fading ([WithFading]), an SNR-to-packet-error curve
//     ([PacketErrorRate], [WithErrorCurve]), summed interference
//     ([WithSummedInterference]), inter-SF rejection matrices
//     ([WithSFRejection]), a capture window ([WithCaptureWindow]) and a
//     Tx-to-Rx turnaround ([WithTurnaround]).
//   - [Medium]: the channel shared by a set of nodes with fixed positions.
//     The scheduler calls [Medium.StartTx] when a node starts sending and
//     [Medium.Outcome] (or [Medium.Outcomes]) when the frame ends.
//   - [DutyCycle] and [Ledger]: ETSI EN 300 220 / ERC/REC 70-03 duty cycle
//     per sub-band over a sliding hour ([EU868]).
package radio
