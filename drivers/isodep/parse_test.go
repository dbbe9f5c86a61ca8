package isodep

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// Values computed by hand from FWT = 4096 × 2^FWI / 13.56 MHz, rounded up
// to the nanosecond (ISO/IEC 14443-4 §7.2).
func TestFrameWaitingTime(t *testing.T) {
	for _, tc := range []struct {
		fwi  byte
		want time.Duration
	}{
		{0, 302065},
		{4, 4833039},
		{7, 38664307},
		{10, 309314455},
		{14, 4949031269},
		{15, 4833039}, // RFU, read as 4
	} {
		if got := FrameWaitingTime(tc.fwi); got != tc.want {
			t.Errorf("FrameWaitingTime(%d) = %d ns, want %d", tc.fwi, got, tc.want)
		}
	}
	if DeltaFWT != 3624779 || FWTMax != 4949031269 || FWTActivation != 4833039 || FWTATQB != 566372 {
		t.Errorf("ΔFWT %d, FWTMax %d, activation %d, ATQB %d", DeltaFWT, FWTMax, FWTActivation, FWTATQB)
	}
}

func TestFrameSize(t *testing.T) {
	want := []int{16, 24, 32, 40, 48, 64, 96, 128, 256, 256, 256, 256, 256, 256, 256, 256}
	for code, w := range want {
		if got := FrameSize(byte(code)); got != w {
			t.Errorf("FrameSize(%d) = %d, want %d", code, got, w)
		}
	}
}

func TestRatesKbps(t *testing.T) {
	if got := (Rate212 | Rate847).Kbps(); !reflect.DeepEqual(got, []int{106, 212, 847}) {
		t.Errorf("Kbps %v", got)
	}
	if got := Rates(0).Kbps(); !reflect.DeepEqual(got, []int{106}) {
		t.Errorf("Kbps %v", got)
	}
}

var atqbTests = []struct {
	name string
	in   string
	want ATQB
	err  error
}{
	{
		// My Number Card (protocols.md §2): ProtInfo B3 81 A1.
		// B3 = 1011 0011: b8 same rate both ways; b6 b5: PICC→PCD 424 and
		// 212; b2 b1: PCD→PICC 424 and 212. 81: Max_Frame_Size 8 = 256
		// bytes, Protocol_Type 1 = ISO/IEC 14443-4. A1: FWI 10 (≈ 309 ms),
		// ADC 00, FO 01 = CID supported, NAD not.
		name: "My Number Card",
		in:   "50 12 34 56 78 00 00 00 00 B3 81 A1",
		want: ATQB{
			PUPI: [4]byte{0x12, 0x34, 0x56, 0x78}, SameBitRate: true,
			PICCToPCD: Rate212 | Rate424, PCDToPICC: Rate212 | Rate424,
			MaxFrameCode: 8, FSC: 256, ProtocolType: 1, ISO14443_4: true,
			FWI: 10, FWT: FrameWaitingTime(10), CIDSupported: true,
		},
	},
	{
		// 00 81 E1: 106 kbit/s only; 256-byte frames, ISO/IEC 14443-4;
		// FWI 14 = FWTMax ≈ 4949 ms, CID supported.
		name: "106 only, FWI 14",
		in:   "50 01 02 03 04 3F 11 22 81 00 81 E1",
		want: ATQB{
			PUPI: [4]byte{1, 2, 3, 4}, AppData: [4]byte{0x3F, 0x11, 0x22, 0x81}, AFI: 0x3F,
			MaxFrameCode: 8, FSC: 256, ProtocolType: 1, ISO14443_4: true,
			FWI: 14, FWT: FWTMax, CIDSupported: true,
		},
	},
	{
		// 71: PICC→PCD 847/424/212 (b7..b5), PCD→PICC 212 (b1); 51: 64
		// bytes, ISO/IEC 14443-4; 4E: FWI 4, ADC 11, NAD supported, CID not.
		name: "FSC 64, NAD",
		in:   "50 AA BB CC DD 00 00 00 00 71 51 4E",
		want: ATQB{
			PUPI: [4]byte{0xAA, 0xBB, 0xCC, 0xDD}, PICCToPCD: Rate212 | Rate424 | Rate847, PCDToPICC: Rate212,
			MaxFrameCode: 5, FSC: 64, ProtocolType: 1, ISO14443_4: true,
			FWI: 4, FWT: FrameWaitingTime(4), ADC: 3, NADSupported: true,
		},
	},
	{
		name: "FWI 15 read as 4, Max_Frame_Size C read as 256",
		in:   "50 00 00 00 01 00 00 00 00 00 C1 F0",
		want: ATQB{
			PUPI: [4]byte{0, 0, 0, 1}, MaxFrameCode: 0xC, FSC: 256, ProtocolType: 1, ISO14443_4: true,
			FWI: 15, FWT: FrameWaitingTime(4),
		},
	},
	{
		name: "not ISO/IEC 14443-4",
		in:   "50 00 00 00 02 00 00 00 00 00 20 40",
		want: ATQB{PUPI: [4]byte{0, 0, 0, 2}, MaxFrameCode: 2, FSC: 32, FWI: 4, FWT: FrameWaitingTime(4)},
	},
	{
		name: "Protocol_Type b4 RFU",
		in:   "50 00 00 00 03 00 00 00 00 00 89 41",
		want: ATQB{
			PUPI: [4]byte{0, 0, 0, 3}, MaxFrameCode: 8, FSC: 256, ProtocolType: 9,
			FWI: 4, FWT: FrameWaitingTime(4), CIDSupported: true,
		},
	},
	{
		// Extended ATQB: 4th Protocol Info byte, SFGI in b8..b5.
		name: "extended, SFGI 2",
		in:   "50 12 34 56 78 00 00 00 00 00 81 A1 20",
		want: ATQB{
			PUPI: [4]byte{0x12, 0x34, 0x56, 0x78}, MaxFrameCode: 8, FSC: 256, ProtocolType: 1, ISO14443_4: true,
			FWI: 10, FWT: FrameWaitingTime(10), CIDSupported: true,
			Extended: true, SFGI: 2, SFGT: FrameWaitingTime(2),
		},
	},
	{
		name: "extended, SFGI 15 read as none",
		in:   "50 12 34 56 78 00 00 00 00 00 81 A1 F0",
		want: ATQB{
			PUPI: [4]byte{0x12, 0x34, 0x56, 0x78}, MaxFrameCode: 8, FSC: 256, ProtocolType: 1, ISO14443_4: true,
			FWI: 10, FWT: FrameWaitingTime(10), CIDSupported: true, Extended: true, SFGI: 15,
		},
	},
	{name: "short", in: "50 12 34 56 78 00 00 00 00 00 81", err: ErrInvalidATQB},
	{name: "long", in: "50 12 34 56 78 00 00 00 00 00 81 A1 00 00", err: ErrInvalidATQB},
	{name: "empty", in: "", err: ErrInvalidATQB},
	{name: "not 50", in: "51 12 34 56 78 00 00 00 00 00 81 A1", err: ErrInvalidATQB},
}

func TestParseATQB(t *testing.T) {
	for _, tc := range atqbTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseATQB(h(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

var atsTests = []struct {
	name string
	in   string
	want ATS
	err  error
}{
	{
		// TL only: every default of ISO/IEC 14443-4 §5.2.
		name: "defaults", in: "01",
		want: ATS{FSCI: 2, FSC: 32, FWI: 4, FWT: FrameWaitingTime(4), CIDSupported: true},
	},
	{
		// T0 05: no interface bytes, FSCI 5 = 64 bytes; historical 80.
		name: "T0 only", in: "03 05 80",
		want: ATS{FSCI: 5, FSC: 64, FWI: 4, FWT: FrameWaitingTime(4), CIDSupported: true, Historical: h("80")},
	},
	{
		// A typical JavaCard: T0 78 = TC TB TA present, FSCI 8 (256);
		// TA 80 = same D, 106 only; TB 70 = FWI 7, SFGI 0; TC 02 = CID.
		name: "JavaCard", in: "0A 78 80 70 02 4A 43 4F 50 33",
		want: ATS{
			FSCI: 8, FSC: 256, TA: true, SameBitRate: true,
			FWI: 7, FWT: FrameWaitingTime(7), CIDSupported: true, Historical: h("4A 43 4F 50 33"),
		},
	},
	{
		// T0 77 (FSCI 7 = 128); TA 77: DS 8/4/2, DR 8/4/2; TB 81: FWI 8,
		// SFGI 1; TC 01: NAD, no CID.
		name: "all bit rates", in: "05 77 77 81 01",
		want: ATS{
			FSCI: 7, FSC: 128, TA: true, DS: Rate212 | Rate424 | Rate847, DR: Rate212 | Rate424 | Rate847,
			FWI: 8, FWT: FrameWaitingTime(8), SFGI: 1, SFGT: FrameWaitingTime(1), NADSupported: true,
		},
	},
	{
		// T0 2C: only TB (FSCI C read as 256); TB FF: FWI 15 → 4, SFGI 15 → none.
		name: "RFU values", in: "03 2C FF",
		want: ATS{FSCI: 0xC, FSC: 256, FWI: 15, FWT: FrameWaitingTime(4), SFGI: 15, CIDSupported: true},
	},
	{
		// TA 1F: b4 set is RFU: 106 kbit/s only.
		name: "TA b4 RFU", in: "03 12 1F",
		want: ATS{FSCI: 2, FSC: 32, TA: true, FWI: 4, FWT: FrameWaitingTime(4), CIDSupported: true},
	},
	{
		// TC 00: neither CID nor NAD.
		name: "TC 00", in: "03 48 00",
		want: ATS{FSCI: 8, FSC: 256, FWI: 4, FWT: FrameWaitingTime(4)},
	},
	{name: "empty", in: "", err: ErrInvalidATS},
	{name: "TL too big", in: "05 78 80 70", err: ErrInvalidATS},
	{name: "TL too small", in: "02 78 80 70", err: ErrInvalidATS},
	{name: "TL zero", in: "00", err: ErrInvalidATS},
	{name: "TB missing", in: "03 38 80", err: ErrInvalidATS},
	{name: "TC missing", in: "02 48", err: ErrInvalidATS},
}

func TestParseATS(t *testing.T) {
	for _, tc := range atsTests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseATS(h(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseATSCopiesHistorical(t *testing.T) {
	in := h("03 05 80")
	a, err := ParseATS(in)
	if err != nil {
		t.Fatal(err)
	}
	in[2] = 0
	if a.Historical[0] != 0x80 {
		t.Error("Historical aliases the input")
	}
}

func TestISO14443_4(t *testing.T) {
	for sak, want := range map[byte]bool{0x20: true, 0x28: true, 0x60: true, 0x08: false, 0x00: false, 0x18: false} {
		if got := ISO14443_4(sak); got != want {
			t.Errorf("ISO14443_4(%02X) = %v", sak, got)
		}
	}
}

var blockTests = []struct {
	in   string
	want Block
	err  bool
}{
	{in: "02 90 00", want: Block{Type: IBlock, INF: h("90 00")}},
	{in: "03", want: Block{Type: IBlock, Num: 1}},
	{in: "12 00 A4", want: Block{Type: IBlock, Chaining: true, INF: h("00 A4")}},
	{in: "13 01", want: Block{Type: IBlock, Num: 1, Chaining: true, INF: h("01")}},
	{in: "0A 01 90 00", want: Block{Type: IBlock, HasCID: true, CID: 1, INF: h("90 00")}},
	{in: "0B 41 6A 82", want: Block{Type: IBlock, Num: 1, HasCID: true, CID: 0x41, INF: h("6A 82")}},
	{in: "06 05 AA", want: Block{Type: IBlock, HasNAD: true, NAD: 5, INF: h("AA")}},
	{in: "1F 0E 21 BB", want: Block{Type: IBlock, Num: 1, Chaining: true, HasCID: true, CID: 0x0E, HasNAD: true, NAD: 0x21, INF: h("BB")}},
	{in: "A2", want: Block{Type: RACK}},
	{in: "A3", want: Block{Type: RACK, Num: 1}},
	{in: "AB 01", want: Block{Type: RACK, Num: 1, HasCID: true, CID: 1}},
	{in: "B2", want: Block{Type: RNAK}},
	{in: "B3", want: Block{Type: RNAK, Num: 1}},
	{in: "BA 01", want: Block{Type: RNAK, HasCID: true, CID: 1}},
	{in: "C2", want: Block{Type: SDeselect}},
	{in: "CA 01", want: Block{Type: SDeselect, HasCID: true, CID: 1}},
	{in: "F2 01", want: Block{Type: SWTX, INF: h("01")}},
	{in: "F2 3B", want: Block{Type: SWTX, INF: h("3B")}},
	{in: "FA 03 C5", want: Block{Type: SWTX, HasCID: true, CID: 3, INF: h("C5")}},
	{in: "F2 3F", want: Block{Type: SWTX, INF: h("3F")}}, // RFU 63 accepted, capped by Conn
	{in: "F0 A0 02 A1 00", want: Block{Type: SParameters, INF: h("A0 02 A1 00")}},
	{in: "F8 01", want: Block{Type: SParameters, HasCID: true, CID: 1}},

	{in: "", err: true},
	{in: "00", err: true},       // I-block with b2 clear
	{in: "22 90 00", err: true}, // I-block with b6 set
	{in: "42", err: true},       // b8..b7 = 01: RFU
	{in: "7F", err: true},       // b8..b7 = 01: RFU
	{in: "A0", err: true},       // R-block with b2 clear
	{in: "A6", err: true},       // R-block with b3 set
	{in: "82", err: true},       // R-block with b6 clear
	{in: "C3", err: true},       // S-block with b1 set
	{in: "C6", err: true},       // S-block with b3 set
	{in: "D2", err: true},       // S-block b6..b5 = 01
	{in: "E2", err: true},       // S-block b6..b5 = 10
	{in: "C0", err: true},       // DESELECT with b2 clear
	{in: "0A", err: true},       // CID missing
	{in: "06", err: true},       // NAD missing
	{in: "0E 01", err: true},    // NAD missing after CID
	{in: "A2 00", err: true},    // R-block with INF
	{in: "C2 00", err: true},    // S(DESELECT) with INF
	{in: "F2", err: true},       // S(WTX) without INF
	{in: "F2 00", err: true},    // WTXM 0
	{in: "F2 C0", err: true},    // WTXM 0 with power bits
	{in: "F2 01 02", err: true},
}

func TestParseBlock(t *testing.T) {
	for _, tc := range blockTests {
		got, err := ParseBlock(h(tc.in))
		if tc.err {
			if !errors.Is(err, ErrInvalidBlock) {
				t.Errorf("ParseBlock(%s) = %+v, %v; want ErrInvalidBlock", tc.in, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseBlock(%s): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseBlock(%s)\n\t= %+v\n\twant %+v", tc.in, got, tc.want)
		}
		if enc := tc.want.Encode(); !bytes.Equal(enc, h(tc.in)) {
			t.Errorf("Encode(%+v) = % X, want %s", tc.want, enc, tc.in)
		}
	}
}

func TestBlockEncodeAndWTXM(t *testing.T) {
	if b := (Block{Type: 0}).Encode(); b != nil {
		t.Errorf("unknown type encodes to % X", b)
	}
	// NAD is an I-block field only.
	if b := (Block{Type: RACK, Num: 1, HasNAD: true, NAD: 9}).Encode(); !bytes.Equal(b, h("A3")) {
		t.Errorf("R(ACK) with NAD encodes to % X", b)
	}
	if m := (Block{Type: SWTX, INF: h("C5")}).WTXM(); m != 5 {
		t.Errorf("WTXM %d", m)
	}
	if m := (Block{Type: IBlock, INF: h("C5")}).WTXM(); m != 0 {
		t.Errorf("WTXM of an I-block %d", m)
	}
	for typ, want := range map[BlockType]string{IBlock: "I", RACK: "R(ACK)", RNAK: "R(NAK)", SDeselect: "S(DESELECT)", SWTX: "S(WTX)", SParameters: "S(PARAMETERS)", 9: "BlockType(9)"} {
		if got := typ.String(); got != want {
			t.Errorf("String %q, want %q", got, want)
		}
	}
}
