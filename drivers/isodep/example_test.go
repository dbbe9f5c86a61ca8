package isodep_test

import (
	"encoding/hex"
	"fmt"

	"github.com/kazashi/kazashi/drivers/isodep"
)

func ExampleParseATQB() {
	// A My Number Card answers WUPB with ProtInfo B3 81 A1.
	raw, _ := hex.DecodeString("501234567800000000B381A1")
	a, err := isodep.ParseATQB(raw)
	if err != nil {
		panic(err)
	}
	fmt.Println("ISO/IEC 14443-4:", a.ISO14443_4)
	fmt.Println("FSC:", a.FSC)
	fmt.Println("FWI:", a.FWI, "FWT:", a.FWT.Round(100_000))
	fmt.Println("CID supported:", a.CIDSupported)
	fmt.Println("kbit/s card to reader:", a.PICCToPCD.Kbps())
	// Output:
	// ISO/IEC 14443-4: true
	// FSC: 256
	// FWI: 10 FWT: 309.3ms
	// CID supported: true
	// kbit/s card to reader: [106 212 424]
}

func ExampleParseATS() {
	raw, _ := hex.DecodeString("0578807002")
	a, err := isodep.ParseATS(raw)
	if err != nil {
		panic(err)
	}
	fmt.Println(a.FSC, a.FWI, a.FWT.Round(100_000), a.CIDSupported, a.NADSupported)
	// Output: 256 7 38.7ms true false
}

func ExampleParseBlock() {
	for _, s := range []string{"029000", "12", "A3", "BA01", "F201", "C2", "42"} {
		raw, _ := hex.DecodeString(s)
		b, err := isodep.ParseBlock(raw)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%v num=%d chaining=%v cid=%v inf=% X\n", b.Type, b.Num, b.Chaining, b.HasCID, b.INF)
	}
	// Output:
	// I num=0 chaining=false cid=false inf=90 00
	// I num=0 chaining=true cid=false inf=
	// R(ACK) num=1 chaining=false cid=false inf=
	// R(NAK) num=0 chaining=false cid=true inf=
	// S(WTX) num=0 chaining=false cid=false inf=01
	// S(DESELECT) num=0 chaining=false cid=false inf=
	// isodep: invalid block: RFU PCB 42
}
