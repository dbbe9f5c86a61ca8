// Package schema holds the JSON Schemas (draft 2020-12) of every document
// Kazashi publishes over MQTT, and validates payloads against them.
//
// One schema file per payload and version, under json/<name>/<version>.json,
// with the $id https://kazashi.dev/schema/<name>/<version>.json; the
// payload's "schema" field carries "<name>/<version>", e.g.
// "kazashi.tap/v2". Every object forbids properties it does not list, so a
// new field is a new version, and a field that leaks (a name in a tap
// event) fails validation. The topic tree and the versioning rule are in
// docs/topics.md.
//
// The schemas are embedded and compiled once; nothing is ever fetched: a
// $ref resolves only to an embedded file (the draft 2020-12 meta-schema
// ships inside the validator library), any other URL is an error.
//
// Errors name the failing property (a JSON pointer) and the rule, never the
// offending value, so they can be logged even when a payload carries data
// it must not.
package schema

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema ids ("<name>/<version>"), as carried in each payload's "schema".
const (
	Tap              = "kazashi.tap/v2"
	Status           = "kazashi.status/v1"
	Health           = "kazashi.health/v1"
	Telemetry        = "kazashi.telemetry/v1"
	RevocationStatus = "kazashi.revocation-status/v1"
	Command          = "kazashi.cmd/v1"
	Reply            = "kazashi.reply/v1"
)

// BaseURL prefixes every schema's $id: $id = BaseURL + id + ".json".
const BaseURL = "https://kazashi.dev/schema/"

// defs is the shared definitions file: embedded and referenced, but no
// payload's schema.
const defs = "kazashi.defs/v1"

var (
	// ErrUnknown: no schema has that id, or no schema belongs to that
	// topic.
	ErrUnknown = errors.New("schema: unknown schema")
	// ErrInvalid is matched (errors.Is) by every error saying that a
	// payload does not conform: not JSON, no "schema" field, or an
	// *InvalidError.
	ErrInvalid = errors.New("schema: invalid payload")
)

//go:embed json
var files embed.FS

// IDs returns the payload schema ids, sorted.
func IDs() []string {
	ids := []string{Tap, Status, Health, Telemetry, RevocationStatus, Command, Reply}
	slices.Sort(ids)
	return ids
}

// File is the path of the schema file of id, relative to this package's
// directory (e.g. "json/kazashi.tap/v2.json").
func File(id string) string { return "json/" + id + ".json" }

// Source returns the schema document of id as embedded.
func Source(id string) ([]byte, error) {
	if !known(id) && id != defs {
		return nil, fmt.Errorf("%w %s", ErrUnknown, quoteID(id))
	}
	return files.ReadFile(File(id))
}

func known(id string) bool { return slices.Contains(IDs(), id) }

// Violation is one rule a payload breaks.
type Violation struct {
	// Path is the JSON pointer (RFC 6901) of the failing value in the
	// payload: "" for the document, "/alarms/0/code" for a nested one.
	Path string
	// Rule says what failed, e.g. "additional properties 'name' not
	// allowed", "missing property 'event_id'", "value must be one of …".
	// It never quotes the payload's value.
	Rule string
}

func (v Violation) String() string { return "at " + strconv.Quote(v.Path) + ": " + v.Rule }

// InvalidError says that a payload does not conform to schema ID.
type InvalidError struct {
	ID         string
	Violations []Violation
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("schema: payload does not conform to ")
	b.WriteString(e.ID)
	for i, v := range e.Violations {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(v.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Validate validates payload against the schema its "schema" field names.
// A payload that is not a JSON object or has no "schema" string wraps
// ErrInvalid; an id no schema has wraps ErrUnknown.
func Validate(payload []byte) error {
	doc, err := parse(payload)
	if err != nil {
		return err
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	id, ok := obj["schema"].(string)
	if !ok {
		return fmt.Errorf("%w: no \"schema\" string", ErrInvalid)
	}
	if !known(id) {
		return fmt.Errorf("%w %s in the payload's \"schema\"", ErrUnknown, quoteID(id))
	}
	return validate(id, doc)
}

// ValidateAs validates payload against schema id (one of IDs): the
// payload's own "schema" must then be id too.
func ValidateAs(id string, payload []byte) error {
	if !known(id) {
		return fmt.Errorf("%w %s", ErrUnknown, quoteID(id))
	}
	doc, err := parse(payload)
	if err != nil {
		return err
	}
	return validate(id, doc)
}

// ValidateTopic validates a payload received on (or published to) topic
// against the schema of the topic (ForTopic). A topic without a schema
// wraps ErrUnknown.
func ValidateTopic(topic string, payload []byte) error {
	id, ok := ForTopic(topic)
	if !ok {
		return fmt.Errorf("%w for topic %q", ErrUnknown, topic)
	}
	return ValidateAs(id, payload)
}

// ForTopic returns the schema id of the payloads on a topic of the tree
// <prefix>/<device>/… (gateway/topics):
//
//	<prefix>/<device>/events             kazashi.tap/v2
//	<prefix>/<device>/status             kazashi.status/v1
//	<prefix>/<device>/status/health      kazashi.health/v1
//	<prefix>/<device>/status/revocation  kazashi.revocation-status/v1
//	<prefix>/<device>/telemetry          kazashi.telemetry/v1
//	<prefix>/<device>/cmd/<name>         kazashi.cmd/v1
//	<prefix>/<device>/reply/<name>       kazashi.reply/v1
//
// ok is false for any other topic, for a filter (wildcards) and for a
// topic starting with '$'. ForTopic takes the prefix to be the first level
// if that leaves a device level and one of the tails above, else the
// first two levels, and so on. That is always right for a one-level
// prefix (the default "kazashi"). With a longer prefix a topic can be
// read two ways ("site/kazashi/cmd/events": command "events" of device
// "kazashi", or the events of device "cmd" under "site/kazashi"); when the
// prefix is known, use ForPrefix.
func ForTopic(topic string) (id string, ok bool) {
	levels, ok := topicLevels(topic)
	if !ok {
		return "", false
	}
	// levels[:k] is the prefix, levels[k] the device, levels[k+1:] the tail.
	for k := 1; k+1 < len(levels); k++ {
		if levels[k] == "" {
			continue
		}
		if id, ok := tailID(levels[k+1:]); ok {
			return id, true
		}
	}
	return "", false
}

// ForPrefix is ForTopic for a topic under a known prefix (topics.Tree
// Prefix): the topic must be <prefix>/<device>/<tail>.
func ForPrefix(prefix, topic string) (id string, ok bool) {
	// A topic name has no wildcard or NUL anywhere, the prefix included,
	// and one starting with '$' is the broker's (found by FuzzForTopic:
	// "#/0/events" under the prefix "#" was mapped).
	if prefix == "" || strings.HasPrefix(topic, "$") || strings.ContainsAny(topic, "+#\x00") {
		return "", false
	}
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return "", false
	}
	levels := strings.Split(rest, "/")
	if len(levels) < 2 || levels[0] == "" {
		return "", false
	}
	return tailID(levels[1:])
}

// topicLevels splits a topic name (MQTT 3.1.1 §4.7: no wildcards, no NUL;
// '$' topics are the broker's) whose first level is not empty.
func topicLevels(topic string) ([]string, bool) {
	if topic == "" || strings.HasPrefix(topic, "$") || strings.ContainsAny(topic, "+#\x00") {
		return nil, false
	}
	levels := strings.Split(topic, "/")
	if levels[0] == "" {
		return nil, false
	}
	return levels, true
}

func tailID(tail []string) (string, bool) {
	switch strings.Join(tail, "/") {
	case "events":
		return Tap, true
	case "status":
		return Status, true
	case "status/health":
		return Health, true
	case "status/revocation":
		return RevocationStatus, true
	case "telemetry":
		return Telemetry, true
	}
	if len(tail) >= 2 && (tail[0] == "cmd" || tail[0] == "reply") && !slices.Contains(tail[1:], "") {
		if tail[0] == "cmd" {
			return Command, true
		}
		return Reply, true
	}
	return "", false
}

// compiled is every payload schema, compiled once.
var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c, err := newCompiler()
	if err != nil {
		return nil, err
	}
	out := make(map[string]*jsonschema.Schema)
	for _, id := range IDs() {
		s, err := c.Compile(BaseURL + id + ".json")
		if err != nil {
			return nil, fmt.Errorf("schema: compiling %s: %w", id, err)
		}
		out[id] = s
	}
	return out, nil
})

// newCompiler returns a compiler that knows every embedded file under its
// $id and refuses to load anything else.
func newCompiler() (*jsonschema.Compiler, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	err := fs.WalkDir(files, "json", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if path.Ext(p) != ".json" {
			return fmt.Errorf("schema: %s is not a .json file", p)
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("schema: %s: %w", p, err)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(p, "json/"), ".json")
		return c.AddResource(BaseURL+id+".json", doc)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// noLoader refuses every URL that is not an embedded file: the validator
// never touches the network or the file system.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema: %s is not embedded; nothing is fetched", url)
}

func parse(payload []byte) (any, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		// The decoder's message can quote a byte of the payload; say only
		// where it broke.
		where := ""
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			where = fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
		}
		return nil, fmt.Errorf("%w: not a single JSON value%s", ErrInvalid, where)
	}
	return doc, nil
}

func validate(id string, doc any) error {
	schemas, err := compiled()
	if err != nil {
		return err
	}
	err = schemas[id].Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("schema: validating %s: %w", id, err)
	}
	e := &InvalidError{ID: id}
	collect(ve, &e.Violations)
	if len(e.Violations) == 0 {
		e.Violations = []Violation{{Rule: "does not conform"}}
	}
	return e
}

var printer = message.NewPrinter(language.English)

// collect appends the leaves of the error tree: the rules that failed.
func collect(ve *jsonschema.ValidationError, out *[]Violation) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collect(c, out)
		}
		return
	}
	v := Violation{Path: pointer(ve.InstanceLocation), Rule: rule(ve.ErrorKind)}
	if !slices.Contains(*out, v) {
		*out = append(*out, v)
	}
}

// rule describes a failed keyword without the payload's value: the
// library's own text for the kinds whose text holds only schema values,
// property names and counts, a neutral one for the rest (pattern, format,
// minimum… quote the value).
func rule(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Required, *kind.AdditionalProperties, *kind.DependentRequired, *kind.Type, *kind.Enum,
		*kind.Const, *kind.MinItems, *kind.MaxItems, *kind.MinLength, *kind.MaxLength,
		*kind.MinProperties, *kind.MaxProperties, *kind.UniqueItems:
		return k.LocalizedString(printer)
	case *kind.FalseSchema:
		return "not allowed here"
	case *kind.Pattern:
		return "does not match pattern " + strconv.Quote(k.Want)
	case *kind.Format:
		return "is not a valid " + k.Want
	case *kind.PropertyNames:
		return "invalid property name"
	case *kind.Minimum:
		return "below the minimum " + k.Want.RatString()
	case *kind.Maximum:
		return "above the maximum " + k.Want.RatString()
	case *kind.ExclusiveMinimum:
		return "not above " + k.Want.RatString()
	case *kind.ExclusiveMaximum:
		return "not below " + k.Want.RatString()
	case *kind.MultipleOf:
		return "not a multiple of " + k.Want.RatString()
	}
	if p := k.KeywordPath(); len(p) > 0 {
		return "fails '" + strings.Join(p, "/") + "'"
	}
	return "does not conform"
}

// pointer renders a JSON pointer (RFC 6901 §3: '~' as ~0, '/' as ~1).
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// quoteID quotes an id taken from a payload for an error: at most 64
// bytes, escaped.
func quoteID(id string) string {
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return strconv.Quote(id)
}
