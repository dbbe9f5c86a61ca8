package sim

import (
	"context"
	"sync"
)

// TypeB is what an ISO/IEC 14443-3 Type B card tells a reader in its ATQB
// (after the leading 0x50 byte).
type TypeB struct {
	PUPI     [4]byte // pseudo-unique PICC identifier
	AppData  [4]byte // application data; byte 0 is the card's AFI
	ProtInfo [3]byte // bit rates, max frame size + protocol type, FWI + ADC + FO
}

// Bytes returns PUPI, AppData and ProtInfo as the 11 bytes that follow 0x50
// in an ATQB.
func (t TypeB) Bytes() []byte {
	b := make([]byte, 0, 11)
	b = append(b, t.PUPI[:]...)
	b = append(b, t.AppData[:]...)
	return append(b, t.ProtInfo[:]...)
}

// FSC is the largest frame the card accepts, from the Max_Frame_Size code in
// ProtInfo (ISO/IEC 14443-3 §7.9.4.2).
func (t TypeB) FSC() int { return frameSize(t.ProtInfo[1] >> 4) }

// frameSize converts an FSCI/FSDI code to bytes.
func frameSize(code byte) int {
	sizes := [...]int{16, 24, 32, 40, 48, 64, 96, 128, 256}
	if int(code) < len(sizes) {
		return sizes[code]
	}
	return 256 // codes 9..F are RFU and mean 256 for an ISO/IEC 14443-4:2008 reader
}

// Target is a virtual contactless card or phone. It has the same Transmit
// method as iso7816.Card, so a virtual card can also be driven directly
// in unit tests. A target answers polls of the technologies it
// implements: TypeBTarget, TypeATarget.
type Target interface {
	// Transmit processes one command APDU and returns the response APDU
	// (data followed by SW1 SW2).
	Transmit(ctx context.Context, apdu []byte) ([]byte, error)
	// PowerOn is called when the card is energised by a reader field: it
	// loses its volatile state (selected application, verified PINs), not
	// its non-volatile state (PIN retry counters).
	PowerOn()
}

// TypeBTarget is an ISO/IEC 14443 Type B card (the My Number Card).
type TypeBTarget interface {
	Target
	// TypeB returns the card's activation data.
	TypeB() TypeB
}

// TypeATarget is an ISO/IEC 14443 Type A target (a phone's card
// emulation, a Type A card).
type TypeATarget interface {
	Target
	// TypeA returns the target's activation data.
	TypeA() TypeA
}

// TypeA is what an ISO/IEC 14443 Type A target tells a reader during
// activation: ATQA (SENS_RES), SAK (SEL_RES), its UID and, when SAK
// announces ISO/IEC 14443-4, the ATS it answers RATS with.
type TypeA struct {
	ATQA [2]byte
	SAK  byte
	UID  []byte // 4, 7 or 10 bytes
	ATS  []byte // TL T0 [TA TB TC] historical bytes
}

// DefaultTypeA is a phone's host card emulation as Android presents it:
// a 4-byte random UID starting 08 (ISO/IEC 14443-3 §6.5.4: 08 marks a
// random ID), ATQA 04 00 and SAK 20 (ISO/IEC 14443-4, no MIFARE), an ATS
// with FSCI 8 (256 bytes), FWI 8, CID supported.
var DefaultTypeA = TypeA{
	ATQA: [2]byte{0x04, 0x00},
	SAK:  0x20,
	UID:  []byte{0x08, 0x3A, 0x91, 0x5C},
	ATS:  []byte{0x05, 0x78, 0x80, 0x80, 0x02},
}

// AsTypeA presents card over Type A with the activation data a (a phone
// holding the card's applications in its wallet).
func AsTypeA(card Target, a TypeA) TypeATarget { return typeAWrap{Target: card, a: a} }

type typeAWrap struct {
	Target
	a TypeA
}

func (w typeAWrap) TypeA() TypeA { return w.a }

func (w typeAWrap) transmitMarked(ctx context.Context, apdu []byte) ([]byte, bool, error) {
	if m, ok := w.Target.(markedTarget); ok {
		return m.transmitMarked(ctx, apdu)
	}
	b, err := w.Target.Transmit(ctx, apdu)
	return b, false, err
}

// Field is the RF field of one reader: at most one card lies on it. All
// methods are safe for concurrent use.
type Field struct {
	mu          sync.Mutex
	card        Target
	seq         uint64        // bumped on every place and remove
	changed     chan struct{} // closed and replaced on every change
	removeAfter int           // remove after this many more APDUs; 0 = never
	apdus       int           // APDUs answered since the card was placed
	total       int           // APDUs answered since the field was made
}

// NewField returns an empty field.
func NewField() *Field {
	return &Field{changed: make(chan struct{})}
}

// Place puts card on the field, replacing any card already there (which
// counts as a removal). When removeAfterAPDUs > 0 the card leaves the field
// by itself right after answering that many APDUs, so a test can pull it in
// the middle of a read.
func (f *Field) Place(card Target, removeAfterAPDUs int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.card = card
	f.apdus = 0
	f.removeAfter = max(removeAfterAPDUs, 0)
	f.bumpLocked()
}

// Remove takes the card off the field; it is a no-op on an empty field.
func (f *Field) Remove() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.card == nil {
		return
	}
	f.card = nil
	f.removeAfter = 0
	f.bumpLocked()
}

// RemoveAfter schedules the current card's removal after n more APDUs
// (n ≤ 0 cancels a scheduled removal).
func (f *Field) RemoveAfter(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n <= 0 {
		f.removeAfter = 0
		return
	}
	f.removeAfter = f.apdus + n
}

// Card returns the card on the field, or nil.
func (f *Field) Card() Target {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.card
}

// FieldState is a snapshot of the field for status reports.
type FieldState struct {
	Present     bool // a card lies on the field
	APDUs       int  // APDUs answered by the current card
	TotalAPDUs  int  // APDUs answered since the field was made
	RemoveAfter int  // the card leaves after this many APDUs in total (0 = never)
}

// State returns a snapshot of the field.
func (f *Field) State() FieldState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FieldState{Present: f.card != nil, APDUs: f.apdus, TotalAPDUs: f.total, RemoveAfter: f.removeAfter}
}

// current returns the card, its placement number and a channel closed at
// the next change.
func (f *Field) current() (Target, uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.card, f.seq, f.changed
}

// markedTarget is implemented by the package's own cards: Transmit that
// also tells whether the answer carries personal data, so that the frame
// log masks it (doc §7).
type markedTarget interface {
	transmitMarked(ctx context.Context, apdu []byte) (resp []byte, personal bool, err error)
}

// transmit sends apdu to the card of placement seq, counts it and performs a
// scheduled removal. ok is false when that card is no longer on the field.
// personal is true when the answer carries personal data.
func (f *Field) transmit(ctx context.Context, seq uint64, apdu []byte) (resp []byte, personal, ok bool, err error) {
	f.mu.Lock()
	card := f.card
	if card == nil || f.seq != seq {
		f.mu.Unlock()
		return nil, false, false, nil
	}
	f.mu.Unlock()
	if m, isMarked := card.(markedTarget); isMarked {
		resp, personal, err = m.transmitMarked(ctx, apdu)
	} else {
		resp, err = card.Transmit(ctx, apdu)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seq != seq {
		// Removed while the card was thinking: the answer never made it.
		return nil, false, false, nil
	}
	f.apdus++
	f.total++
	if f.removeAfter > 0 && f.apdus >= f.removeAfter {
		f.card = nil
		f.removeAfter = 0
		f.bumpLocked()
	}
	return resp, personal, true, err
}

func (f *Field) bumpLocked() {
	f.seq++
	close(f.changed)
	f.changed = make(chan struct{})
}
