package envoy

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// messageInput is msg as the OPA-Envoy plugin puts a CheckRequest into the
// input: each set field under its JSON name, nested messages as objects
// (a google.protobuf.Struct as the object it holds), and scalars as their Go
// values would convert to JSON: integers and enum numbers as numbers, bytes
// as base64. This is not protojson, which writes 64-bit integers as strings,
// enums by name and a Timestamp as an RFC 3339 string.
func messageInput(msg protoreflect.Message) map[string]any {
	if s, ok := msg.Interface().(interface{ AsMap() map[string]any }); ok {
		return s.AsMap()
	}
	out := make(map[string]any, msg.Descriptor().Fields().Len())
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			m := make(map[string]any, v.Map().Len())
			kind := fd.MapValue().Kind()
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				m[k.String()] = valueInput(kind, mv)
				return true
			})
			out[fd.JSONName()] = m
		case fd.IsList():
			l := make([]any, v.List().Len())
			for i := range l {
				l[i] = valueInput(fd.Kind(), v.List().Get(i))
			}
			out[fd.JSONName()] = l
		default:
			out[fd.JSONName()] = valueInput(fd.Kind(), v)
		}
		return true
	})
	return out
}

// valueInput is one value of a field of the given kind.
func valueInput(kind protoreflect.Kind, v protoreflect.Value) any {
	switch kind {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageInput(v.Message())
	case protoreflect.EnumKind:
		return int64(v.Enum())
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint()
	case protoreflect.FloatKind:
		// As JSON writes a float32: its shortest form, not float64's.
		return json.Number(strconv.FormatFloat(v.Float(), 'g', -1, 32))
	case protoreflect.DoubleKind:
		return v.Float()
	}
	return v.Interface()
}

// LoadProtoSet reads a file of a FileDescriptorSet (protoc
// --descriptor_set_out, with --include_imports), for parsing gRPC bodies.
func LoadProtoSet(path string) (*protoregistry.Files, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read proto descriptor set: %w", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("parse proto descriptor set %s: %w", path, err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("proto descriptor set %s: %w", path, err)
	}
	return files, nil
}

// parseGRPCBody parses the first message of a gRPC request body (five bytes
// of framing, then the message) as the input message of the method its
// path names (/package.Service/Method), in protojson, as the plugin does. A
// compressed message, an unknown service or method and a streaming method
// leave the body unparsed; a message shorter than its frame says is
// truncated.
func parseGRPCBody(raw []byte, segments []string, files *protoregistry.Files) (any, bool, error) {
	if len(segments) != 2 {
		return nil, false, errors.New("parse gRPC body: the path is not /service/method")
	}
	if len(raw) < 5 {
		return nil, false, errors.New("parse gRPC body: less than the 5 bytes of a frame")
	}
	if raw[0] != 0 {
		return nil, false, nil // compressed
	}
	size := binary.BigEndian.Uint32(raw[1:5])
	if uint64(size) > uint64(len(raw)-5) {
		return nil, true, nil
	}
	desc, err := files.FindDescriptorByName(protoreflect.FullName(segments[0]))
	if err != nil {
		return nil, false, nil
	}
	svc, ok := desc.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, false, nil
	}
	method := svc.Methods().ByName(protoreflect.Name(segments[1]))
	if method == nil || method.IsStreamingClient() {
		return nil, false, nil
	}
	msg := dynamicpb.NewMessage(method.Input())
	if err := proto.Unmarshal(raw[5:5+size], msg); err != nil {
		return nil, false, fmt.Errorf("parse gRPC body: %w", err)
	}
	b, err := protojson.Marshal(msg)
	if err != nil {
		return nil, false, fmt.Errorf("parse gRPC body: %w", err)
	}
	var v any
	if err := util.UnmarshalJSON(b, &v); err != nil {
		return nil, false, fmt.Errorf("parse gRPC body: %w", err)
	}
	return v, false, nil
}
