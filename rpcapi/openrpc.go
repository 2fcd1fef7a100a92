package rpcapi

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"time"
)

// OpenRPCVersion is the OpenRPC specification version of rpc.discover's
// document.
const OpenRPCVersion = "1.2.6"

// Document is an OpenRPC document (the subset meshd uses).
type Document struct {
	OpenRPC    string      `json:"openrpc"`
	Info       DocInfo     `json:"info"`
	Methods    []DocMethod `json:"methods"`
	Components Components  `json:"components"`
}

// DocInfo is the document's info object.
type DocInfo struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Version     string `json:"version"`
}

// DocMethod is an OpenRPC method object.
type DocMethod struct {
	Name           string              `json:"name"`
	Summary        string              `json:"summary,omitempty"`
	Description    string              `json:"description,omitempty"`
	ParamStructure string              `json:"paramStructure"`
	Params         []ContentDescriptor `json:"params"`
	Result         ContentDescriptor   `json:"result"`
	Errors         []DocError          `json:"errors,omitempty"`
	// Notification describes what the method pushes afterwards (an
	// OpenRPC specification extension).
	Notification *ContentDescriptor `json:"x-notification,omitempty"`
}

// ContentDescriptor is an OpenRPC content descriptor.
type ContentDescriptor struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Schema      *Schema `json:"schema"`
}

// DocError is an OpenRPC error object.
type DocError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Components holds the named schemas methods refer to.
type Components struct {
	Schemas map[string]*Schema `json:"schemas"`
}

// Schema is the JSON Schema subset the reflector produces.
type Schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Type                 string             `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	ContentEncoding      string             `json:"contentEncoding,omitempty"`
	Description          string             `json:"description,omitempty"`
	Properties           map[string]*Schema `json:"properties,omitempty"`
	Required             []string           `json:"required,omitempty"`
	AdditionalProperties *Schema            `json:"additionalProperties,omitempty"`
	Items                *Schema            `json:"items,omitempty"`
	Minimum              *float64           `json:"minimum,omitempty"`
	Maximum              *float64           `json:"maximum,omitempty"`
}

// CodeInfo documents one error code.
type CodeInfo struct {
	Code    int
	Name    string
	Meaning string
}

// Codes lists every error code a client can see.
var Codes = []CodeInfo{
	{CodeParseError, "parse error", "The request is not valid JSON (or an element of a batch is not an object)."},
	{CodeInvalidRequest, "invalid request", "Not a JSON-RPC 2.0 request: wrong or missing `\"jsonrpc\": \"2.0\"`, an id that is not a string, number or null, an empty batch, a duplicate id in a batch."},
	{CodeMethodNotFound, "method not found", "No such method, or msg.subscribe over HTTP POST (which cannot carry notifications)."},
	{CodeInvalidParams, "invalid params", "Missing, unknown or ill-typed parameters, or values the node rejects (a malformed address, text and payload both set, limit above 1000)."},
	{CodeUnavailable, "unavailable", "The node is starting or shutting down, or the request was cancelled. Retry later."},
	{CodeRefused, "refused", "The node refused the request: payload too large, queue full, quota exceeded."},
	{CodeConnectFailed, "connect failed", "node.connect could not dial the peer."},
	{CodeInternal, "internal", "A bug or an unexpected failure in the daemon; the message is generic and the detail is in the daemon's log."},
	{CodeTooLarge, "too large", "The request exceeds MaxRequestBytes (256 KiB). On the socket and WebSocket the connection is closed after this response."},
	{CodeNotJoined, "not joined", "The request names a broadcast channel (by ID or name) this node has not joined: channel.join it first."},
	{CodeNotFound, "not found", "A fapp method names a reservation, slot or profile this node does not know."},
}

func codeInfo(code int) CodeInfo {
	for _, c := range Codes {
		if c.Code == code {
			return c
		}
	}
	return CodeInfo{Code: code, Name: "error"}
}

// openRPCMetaSchema is what rpc.discover's result is, by convention.
const openRPCMetaSchema = "https://raw.githubusercontent.com/open-rpc/meta-schema/master/schema.json"

// OpenRPC builds the OpenRPC document for Methods. rpc.discover returns it;
// docs/api.md is generated from it.
func OpenRPC(version string) *Document {
	return openRPC(version, typeDocs, fieldDocs)
}

// openRPC builds the document with the given doc comments (the generator
// of docs_gen.go passes fresh ones).
func openRPC(version string, typeDocs, fieldDocs map[string]string) *Document {
	if version == "" {
		version = "dev"
	}
	g := &schemaGen{schemas: map[string]*Schema{}, typeDocs: typeDocs, fieldDocs: fieldDocs}
	doc := &Document{
		OpenRPC: OpenRPCVersion,
		Info: DocInfo{
			Title:       "meshd local API",
			Description: "JSON-RPC 2.0 API of the meshd daemon, served on a unix socket (mode 0600) and on loopback HTTP POST / and WebSocket /ws with a bearer token. Every method may also fail with -32700, -32600, -32601 and -32004.",
			Version:     version,
		},
	}
	for _, m := range Methods {
		dm := DocMethod{
			Name:           m.Name,
			Summary:        m.Summary,
			Description:    m.Description,
			ParamStructure: "by-name",
			Params:         []ContentDescriptor{},
		}
		if m.Params != nil {
			for _, f := range jsonFields(m.Params) {
				dm.Params = append(dm.Params, ContentDescriptor{
					Name:        f.name,
					Description: fieldDocs[m.Params.Name()+"."+f.name],
					Required:    f.required,
					Schema:      g.schema(f.typ),
				})
			}
		}
		if m.Name == MethodDiscover {
			dm.Result = ContentDescriptor{Name: "OpenRPC document", Schema: &Schema{Ref: openRPCMetaSchema}}
		} else {
			dm.Result = ContentDescriptor{Name: resultName(m.Result), Schema: g.schema(m.Result)}
		}
		for _, c := range m.Errors {
			ci := codeInfo(c)
			dm.Errors = append(dm.Errors, DocError{Code: c, Message: ci.Name})
		}
		if m.Push {
			dm.Notification = &ContentDescriptor{
				Name:        NotifyEvent,
				Description: "Pushed after the result, one per node event; params is the Event.",
				Schema:      g.schema(reflect.TypeFor[Event]()),
			}
		}
		doc.Methods = append(doc.Methods, dm)
	}
	doc.Components.Schemas = g.schemas
	return doc
}

func resultName(t reflect.Type) string {
	if t.Kind() == reflect.Slice {
		return strings.ToLower(t.Elem().Name()) + "s"
	}
	if n := t.Name(); n != "" {
		return strings.ToLower(n[:1]) + n[1:]
	}
	return "result"
}

type field struct {
	name     string
	typ      reflect.Type
	required bool
}

// jsonFields lists a struct's fields as encoding/json sees them. A field
// without omitempty is required.
func jsonFields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = sf.Name
		}
		omit := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		fs = append(fs, field{name: name, typ: sf.Type, required: !omit})
	}
	return fs
}

// schemaGen reflects Go types into JSON Schemas; named structs go to
// components and are referred to by $ref.
type schemaGen struct {
	schemas   map[string]*Schema
	typeDocs  map[string]string
	fieldDocs map[string]string
}

var timeType = reflect.TypeFor[time.Time]()

func (g *schemaGen) schema(t reflect.Type) *Schema {
	if t == timeType {
		return &Schema{Type: "string", Format: "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return &Schema{Type: "string"}
	case reflect.Bool:
		return &Schema{Type: "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &Schema{Type: "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s := &Schema{Type: "integer", Minimum: new(float64)}
		if t.Kind() == reflect.Uint32 {
			m := float64(1<<32 - 1)
			s.Maximum = &m
		}
		return s
	case reflect.Float32, reflect.Float64:
		return &Schema{Type: "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			if t == reflect.TypeFor[json.RawMessage]() {
				return &Schema{}
			}
			return &Schema{Type: "string", ContentEncoding: "base64"}
		}
		return &Schema{Type: "array", Items: g.schema(t.Elem())}
	case reflect.Map:
		return &Schema{Type: "object", AdditionalProperties: g.schema(t.Elem())}
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return g.structSchema(t)
		}
		if _, ok := g.schemas[name]; !ok {
			g.schemas[name] = nil // break cycles
			g.schemas[name] = g.structSchema(t)
		}
		return &Schema{Ref: "#/components/schemas/" + name}
	}
	return &Schema{}
}

func (g *schemaGen) structSchema(t reflect.Type) *Schema {
	s := &Schema{Type: "object", Description: g.typeDocs[t.Name()], Properties: map[string]*Schema{}}
	for _, f := range jsonFields(t) {
		fs := g.schema(f.typ)
		if d := g.fieldDocs[t.Name()+"."+f.name]; d != "" {
			// Next to a $ref, draft-7 tools ignore it, but people
			// reading the document do not.
			fs.Description = d
		}
		s.Properties[f.name] = fs
		if f.required {
			s.Required = append(s.Required, f.name)
		}
	}
	sort.Strings(s.Required)
	return s
}
