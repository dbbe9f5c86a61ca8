package holder

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var parseTests = []struct {
	line  string
	ok    bool
	typ   msgType
	id    uint64
	value string
	long  bool
}{
	{`{"type":"answer","id":1,"value":"1234"}`, true, msgAnswer, 1, "1234", false},
	{` { "type" : "answer" , "id" : 42 , "value" : "abc" } `, true, msgAnswer, 42, "abc", false},
	{`{"value":"1234","id":9007199254740991,"type":"answer"}`, true, msgAnswer, 1<<53 - 1, "1234", false},
	{`{"type":"cancel","id":3}`, true, msgCancel, 3, "", false},
	{`{"type":"cancel","id":0}`, true, msgCancel, 0, "", false},
	{`{"type":"answer","id":1,"value":""}`, true, msgAnswer, 1, "", false},
	{`{"type":"answer","id":1,"value":"\u0031\u0032\/\"\\\b\f\n\r\t"}`, true, msgAnswer, 1, "12/\"\\\b\f\n\r\t", false},
	{`{"type":"answer","id":1,"value":"\ud83d\ude00é"}`, true, msgAnswer, 1, "😀é", false},
	{`{"type":"answer","id":1,"value":"x","extra":null,"n":-1.5e+3,"b":true,"f":false,"s":"\u00e9"}`, true, msgAnswer, 1, "x", false},
	{`{"typ\u0065":"answer","id":1,"value":"1"}`, true, msgAnswer, 1, "1", false},
	{`{"type":"answer","id":1,"value":"` + strings.Repeat("7", maxValue) + `"}`, true, msgAnswer, 1, strings.Repeat("7", maxValue), false},
	{`{"type":"answer","id":1,"value":"` + strings.Repeat("7", maxValue+1) + `"}`, true, msgAnswer, 1, "", true},
	{`{"type":"answer","id":1,"value":"` + strings.Repeat("é", maxValue/2) + `x"}`, true, msgAnswer, 1, "", true},
	{`{"` + strings.Repeat("k", 100) + `":1,"type":"cancel","id":1}`, true, msgCancel, 1, "", false},

	{``, false, 0, 0, "", false},
	{`null`, false, 0, 0, "", false},
	{`[]`, false, 0, 0, "", false},
	{`{}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234"`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234"}}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234"} x`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234"}{"type":"cancel","id":1}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234",}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1 "value":"1234"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":1234}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":null}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":["1234"]}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":{"v":"1234"}}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234","x":{}}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234","x":[1]}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1}`, false, 0, 0, "", false},
	{`{"type":"answer","value":"1234"}`, false, 0, 0, "", false},
	{`{"id":1,"value":"1234"}`, false, 0, 0, "", false},
	{`{"type":"cancel","id":1,"value":"1234"}`, false, 0, 0, "", false},
	{`{"type":"request","id":1}`, false, 0, 0, "", false},
	{`{"type":"Answer","id":1,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":1,"id":1,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","type":"answer","id":1,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"id":2,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1","value":"2"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":-1,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":01,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1.0,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1e2,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":"1","value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":9007199254740992,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":99999999999999999999999,"value":"1"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"12` + "\x01" + `34"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"12` + "\xff" + `34"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"\x"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"\u12"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"\ud800"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"\udc00"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"\ud800\u0041"}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1234\`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1","x":tru}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1","x":-}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1","x":1.}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1","x":1e}`, false, 0, 0, "", false},
	{`{"type":"answer","id":1,"value":"1","x":+1}`, false, 0, 0, "", false},
	{`{'type':'answer','id':1,'value':'1'}`, false, 0, 0, "", false},
	{`{type:"answer",id:1,value:"1"}`, false, 0, 0, "", false},
}

func TestParseClientLine(t *testing.T) {
	for _, tt := range parseTests {
		m, err := parseClientLine([]byte(tt.line))
		if (err == nil) != tt.ok {
			t.Errorf("parse(%q) = %v, want ok=%v", tt.line, err, tt.ok)
			continue
		}
		if err != nil {
			if m.typ != 0 || m.value != nil {
				t.Errorf("parse(%q): error with a message %+v", tt.line, m)
			}
			if err.Error() != errMalformed.Error() {
				t.Errorf("parse(%q): error %q carries detail", tt.line, err)
			}
			continue
		}
		if m.typ != tt.typ || m.id != tt.id || string(m.value) != tt.value || m.overlong != tt.long {
			t.Errorf("parse(%q) = %+v (value %q), want typ %d id %d value %q long %v", tt.line, m, m.value, tt.typ, tt.id, tt.value, tt.long)
		}
		if !json.Valid([]byte(tt.line)) {
			t.Errorf("parse accepted %q, which is not JSON", tt.line)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "abc", "a\"b\\c", "\x00\x1f\n\t", "番号", "\xff\xfe", "<&>"} {
		got := appendString(nil, s)
		if string(appendBytesString(nil, []byte(s))) != string(got) {
			t.Errorf("appendString and appendBytesString differ for %q", s)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("appendString(%q) = %s: %v", s, got, err)
			continue
		}
		if utf8.ValidString(s) && back != s {
			t.Errorf("round trip %q → %s → %q", s, got, back)
		}
	}
}

func FuzzParseClientLine(f *testing.F) {
	for _, tt := range parseTests {
		f.Add([]byte(tt.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := string(line)
		m, err := parseClientLine(line)
		if string(line) != orig {
			t.Fatal("parser modified its input")
		}
		if err != nil {
			if m.typ != 0 || m.value != nil || m.overlong {
				t.Fatalf("error with a message: %+v", m)
			}
			return
		}
		// Accepted: it must be a JSON object that encoding/json reads the
		// same way, with a known type and an integer id.
		if !json.Valid(line) {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		var ref map[string]any
		if err := json.Unmarshal(line, &ref); err != nil {
			t.Fatalf("accepted %q that encoding/json rejects: %v", line, err)
		}
		for k, v := range ref {
			switch v.(type) {
			case map[string]any, []any:
				t.Fatalf("accepted nested member %q in %q", k, line)
			}
		}
		id, ok := ref["id"].(float64)
		if !ok || id != float64(m.id) || id < 0 || id > maxID {
			t.Fatalf("id %v vs %d in %q", ref["id"], m.id, line)
		}
		switch m.typ {
		case msgAnswer:
			if ref["type"] != "answer" {
				t.Fatalf("answer with type %v", ref["type"])
			}
			v, ok := ref["value"].(string)
			if !ok {
				t.Fatalf("answer without a string value: %q", line)
			}
			if m.overlong {
				if len(v) <= maxValue || m.value != nil {
					t.Fatalf("overlong flag for %d bytes", len(v))
				}
			} else if v != string(m.value) || !utf8.Valid(m.value) {
				t.Fatalf("value %q, encoding/json reads %q", m.value, v)
			}
		case msgCancel:
			if ref["type"] != "cancel" {
				t.Fatalf("cancel with type %v", ref["type"])
			}
			if _, has := ref["value"]; has || m.value != nil {
				t.Fatalf("cancel with a value: %q", line)
			}
		default:
			t.Fatalf("accepted type %d", m.typ)
		}
		// What the server would do next: a value passing CheckFormat is
		// exactly one of the documented shapes.
		if m.typ == msgAnswer && !m.overlong {
			for _, k := range []Kind{AuthPIN, SupportPIN, CollationB, SignPassword} {
				v := append([]byte(nil), m.value...)
				Canonicalize(k, v)
				if CheckFormat(k, v) == nil {
					for _, c := range v {
						if !('0' <= c && c <= '9' || k == SignPassword && 'A' <= c && c <= 'Z') {
							t.Fatalf("%s accepted %q", k, v)
						}
					}
				}
			}
		}
	})
}
