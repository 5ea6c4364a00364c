package state

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// ConfigError is one problem in a file under /perm. It names the file, the
// position (when known) and the field, because the person reading it is
// holding a text editor, not a debugger.
type ConfigError struct {
	File string // base name, e.g. "interfaces.json"
	Line int    // 1-based; 0 when the problem has no position
	Col  int    // 1-based byte column
	Path string // field path, e.g. "interfaces[1].addr"; empty for the whole file
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem found in one file. Its Error joins them one
// per line, which is what `homerouter check` prints.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// decoded is a JSON document that passed the strict walk: every field known,
// every value of the right kind. It remembers where each value starts so
// that semantic checks can point at a line too.
type decoded struct {
	file string
	data []byte
	pos  map[string]int // field path -> byte offset of its value
}

// errorf returns a ConfigError for the field at path, positioned at its
// value when the walk saw it.
func (d *decoded) errorf(path, format string, args ...any) *ConfigError {
	e := &ConfigError{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if off, ok := d.pos[path]; ok {
		e.Line, e.Col = lineCol(d.data, off)
	}
	return e
}

// decodeStrict parses data into v (a pointer to a struct) and rejects what
// encoding/json would silently accept or report without a position: unknown
// fields (also in a different case), values of the wrong kind, numbers out of
// range, trailing data.
func decodeStrict(file string, data []byte, v any) (*decoded, error) {
	d := &decoded{file: file, data: data, pos: make(map[string]int)}
	w := walker{d: d, dec: json.NewDecoder(bytes.NewReader(data))}
	w.dec.UseNumber()
	if err := w.value(reflect.TypeOf(v).Elem(), ""); err != nil {
		return nil, err
	}
	if _, err := w.dec.Token(); err != io.EOF {
		off := w.next()
		e := &ConfigError{File: file, Msg: "unexpected data after the top-level value"}
		e.Line, e.Col = lineCol(data, off)
		return nil, ConfigErrors{e}
	}
	if err := json.Unmarshal(data, v); err != nil {
		// The walk should have caught everything; keep the message if not.
		return nil, ConfigErrors{{File: file, Msg: err.Error()}}
	}
	return d, nil
}

type walker struct {
	d   *decoded
	dec *json.Decoder
}

// next returns the offset of the next token: InputOffset is the end of the
// previous one, so skip the whitespace and separators between them.
func (w *walker) next() int {
	off := int(w.dec.InputOffset())
	for off < len(w.d.data) && (isSpace(w.d.data[off]) || w.d.data[off] == ':' || w.d.data[off] == ',') {
		off++
	}
	return off
}

func (w *walker) fail(off int, path, format string, args ...any) error {
	e := &ConfigError{File: w.d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Col = lineCol(w.d.data, off)
	return ConfigErrors{e}
}

// token reads the next token, turning a syntax error into a positioned
// ConfigError for the value at path.
func (w *walker) token(path string) (json.Token, int, error) {
	off := w.next()
	tok, err := w.dec.Token()
	if err == nil {
		return tok, off, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		// The streaming decoder's Offset is not always from the start
		// of the file (inside a string or number it is not), but
		// Unmarshal's is: it points just past the offending byte. The
		// walk consumed only valid input before this token, so the
		// first error Unmarshal finds is this one.
		var v any
		if err := json.Unmarshal(w.d.data, &v); errors.As(err, &se) && se.Offset > 0 {
			return nil, 0, w.fail(int(se.Offset)-1, path, "%s", se.Error())
		}
		return nil, 0, w.fail(off, path, "%s", se.Error())
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, 0, w.fail(len(w.d.data), path, "unexpected end of file")
	default:
		return nil, 0, w.fail(off, path, "%v", err)
	}
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// value walks one JSON value that is to be decoded into a Go value of type t.
func (w *walker) value(t reflect.Type, path string) error {
	tok, off, err := w.token(path)
	if err != nil {
		return err
	}
	w.d.pos[path] = off
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if tok == nil { // null leaves the zero value: "not set"
		if path == "" {
			return w.fail(off, path, "expected %s, got null", describe(t))
		}
		return nil
	}
	kind := t.Kind()
	wrong := func(got string) error {
		return w.fail(off, path, "expected %s, got %s", describe(t), got)
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			switch {
			case kind == reflect.Struct:
				return w.object(t, path)
			case kind == reflect.Map && t.Key().Kind() == reflect.String:
				return w.mapObject(t, path)
			case kind == reflect.Interface:
				return w.anything(path, '{')
			}
			return wrong("an object")
		case '[':
			switch kind {
			case reflect.Slice, reflect.Array:
				return w.array(t, path)
			case reflect.Interface:
				return w.anything(path, '[')
			}
			return wrong("a list")
		}
	case string:
		if reflect.PointerTo(t).Implements(textUnmarshaler) {
			// Parse it here, where the position is known.
			if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(tok)); err != nil {
				return w.fail(off, path, "%v", err)
			}
			return nil
		}
		if kind == reflect.String || kind == reflect.Interface {
			return nil
		}
		return wrong("a string")
	case bool:
		if kind == reflect.Bool || kind == reflect.Interface {
			return nil
		}
		return wrong("true or false")
	case json.Number:
		switch kind {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if _, err := strconv.ParseInt(tok.String(), 10, t.Bits()); err != nil {
				return w.fail(off, path, "%s is not a whole number in range for %s", tok, describe(t))
			}
			return nil
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if _, err := strconv.ParseUint(tok.String(), 10, t.Bits()); err != nil {
				return w.fail(off, path, "%s is not a whole number in range for %s", tok, describe(t))
			}
			return nil
		case reflect.Float32, reflect.Float64:
			if _, err := strconv.ParseFloat(tok.String(), t.Bits()); err != nil {
				return w.fail(off, path, "%s is out of range", tok)
			}
			return nil
		case reflect.Interface:
			return nil
		}
		return wrong("a number")
	}
	return w.fail(off, path, "unexpected %v", tok)
}

func (w *walker) object(t reflect.Type, path string) error {
	fields := jsonFields(t)
	seen := make(map[string]int) // key -> offset, to reject a key given twice
	for w.dec.More() {
		tok, off, err := w.token(path)
		if err != nil {
			return err
		}
		key := tok.(string) // the decoder only returns strings as object keys
		sub := joinPath(path, key)
		if first, dup := seen[key]; dup {
			line, _ := lineCol(w.d.data, first)
			return w.fail(off, sub, "given twice (first on line %d); only one can count", line)
		}
		seen[key] = off
		f, ok := fields[key]
		if !ok {
			if known := knownNames(fields); known != "" {
				return w.fail(off, sub, "unknown field (known: %s)", known)
			}
			return w.fail(off, sub, "unknown field")
		}
		if err := w.value(f.Type, sub); err != nil {
			return err
		}
	}
	_, _, err := w.token(path) // '}'
	return err
}

func (w *walker) mapObject(t reflect.Type, path string) error {
	for w.dec.More() {
		tok, _, err := w.token(path)
		if err != nil {
			return err
		}
		if err := w.value(t.Elem(), joinPath(path, tok.(string))); err != nil {
			return err
		}
	}
	_, _, err := w.token(path)
	return err
}

func (w *walker) array(t reflect.Type, path string) error {
	for i := 0; w.dec.More(); i++ {
		if err := w.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	_, _, err := w.token(path) // ']'
	return err
}

// anything skips a value of any shape, checking only its syntax.
func (w *walker) anything(path string, open json.Delim) error {
	anyType := reflect.TypeFor[any]()
	if open == '{' {
		return w.mapObject(reflect.TypeFor[map[string]any](), path)
	}
	return w.array(reflect.SliceOf(anyType), path)
}

// jsonFields maps the JSON names of t's exported fields to the fields, the
// way encoding/json names them (tag name, else the Go name).
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField)
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		m[name] = f
	}
	return m
}

func knownNames(fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names a Go type the way a person editing JSON thinks of it.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
