use super::*;
use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event};
use prost::Message;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span(name: &str, attributes: Vec<KeyValue>, status: Option<i32>) -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        parent_span_id: vec![9; 8],
        trace_state: "k=v".into(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes,
        events: vec![Event {
            name: "ev".into(),
            ..Default::default()
        }],
        status: status.map(|code| Status {
            code,
            message: "why".into(),
        }),
        flags: 0x301,
        ..Default::default()
    }
}

fn resource(service: Option<&str>) -> Option<Resource> {
    Some(Resource {
        attributes: service
            .map(|s| {
                vec![
                    kv("host.name", Value::StringValue("h".into())),
                    kv("service.name", Value::StringValue(s.into())),
                ]
            })
            .unwrap_or_default(),
        ..Default::default()
    })
}

fn request(groups: Vec<(Option<Resource>, Vec<Vec<Span>>)>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(resource, scopes)| ResourceSpans {
                resource,
                scope_spans: scopes
                    .into_iter()
                    .map(|spans| ScopeSpans {
                        spans,
                        schema_url: "s".into(),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: "r".into(),
            })
            .collect(),
    }
    .encode_to_vec()
}

#[test]
fn views_match_prost_decoding() {
    let bytes = request(vec![
        (
            resource(Some("checkout")),
            vec![
                vec![
                    span(
                        "GET /cart",
                        vec![
                            kv("http.request.method", Value::StringValue("GET".into())),
                            kv("http.response.status_code", Value::IntValue(503)),
                            kv("list", Value::ArrayValue(ArrayValue { values: vec![] })),
                        ],
                        Some(2),
                    ),
                    span("no attrs", vec![], None),
                ],
                vec![span("second scope", vec![], Some(1))],
            ],
        ),
        (None, vec![vec![span("orphan", vec![], None)]]),
    ]);
    let view = TraceExportView::parse(&bytes).unwrap();
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();

    assert_eq!(view.resources.len(), 2);
    assert_eq!(view.resources[0].service_name, Some("checkout"));
    assert_eq!(
        Resource::decode(view.resources[0].raw.unwrap()).unwrap(),
        decoded.resource_spans[0].resource.clone().unwrap()
    );
    assert_eq!(view.resources[1], ResourceView::default());

    let prost_spans: Vec<(usize, &Span)> = decoded
        .resource_spans
        .iter()
        .enumerate()
        .flat_map(|(i, rs)| {
            rs.scope_spans
                .iter()
                .flat_map(move |ss| ss.spans.iter().map(move |s| (i, s)))
        })
        .collect();
    assert_eq!(view.spans.len(), prost_spans.len());
    for (v, (resource, s)) in view.spans.iter().zip(&prost_spans) {
        assert_eq!(v.resource, *resource);
        assert_eq!(&Span::decode(v.raw).unwrap(), *s);
        assert_eq!(v.trace_id, s.trace_id.as_slice());
        assert_eq!(v.span_id, s.span_id.as_slice());
        assert_eq!(v.parent_span_id, s.parent_span_id.as_slice());
        assert_eq!(v.name, s.name);
        assert_eq!(v.kind, s.kind);
        assert_eq!(v.start_time_unix_nano, s.start_time_unix_nano);
        assert_eq!(v.end_time_unix_nano, s.end_time_unix_nano);
        assert_eq!(v.status_code, s.status.as_ref().map_or(0, |st| st.code));
    }
    assert_eq!(view.spans[0].http_status_code, Some(503));
    assert_eq!(view.spans[1].http_status_code, None);
}

#[test]
fn http_status_prefers_the_current_key_and_reads_every_form() {
    let status_of = |attributes: Vec<KeyValue>| {
        let bytes = request(vec![(None, vec![vec![span("s", attributes, None)]])]);
        TraceExportView::parse(&bytes).unwrap().spans[0].http_status_code
    };
    assert_eq!(
        status_of(vec![
            kv("http.status_code", Value::IntValue(404)),
            kv("http.response.status_code", Value::IntValue(500)),
        ]),
        Some(500)
    );
    assert_eq!(
        status_of(vec![kv(
            "http.status_code",
            Value::StringValue(" 404 ".into())
        )]),
        Some(404)
    );
    assert_eq!(
        status_of(vec![kv("http.status_code", Value::DoubleValue(502.0))]),
        Some(502)
    );
    assert_eq!(
        status_of(vec![kv("http.status_code", Value::DoubleValue(502.5))]),
        None
    );
    assert_eq!(
        status_of(vec![kv("http.status_code", Value::BoolValue(true))]),
        None
    );
    // An unreadable current key falls back to the older one.
    assert_eq!(
        status_of(vec![
            kv(
                "http.response.status_code",
                Value::StringValue("n/a".into())
            ),
            kv("http.status_code", Value::IntValue(201)),
        ]),
        Some(201)
    );
    // The first attribute with a key is the one that counts.
    assert_eq!(
        status_of(vec![
            kv("http.status_code", Value::IntValue(200)),
            kv("http.status_code", Value::IntValue(500)),
        ]),
        Some(200)
    );
}

#[test]
fn empty_or_missing_service_name_is_none() {
    let bytes = request(vec![(resource(Some("")), vec![]), (resource(None), vec![])]);
    let view = TraceExportView::parse(&bytes).unwrap();
    assert_eq!(view.resources[0].service_name, None);
    assert_eq!(view.resources[1].service_name, None);
    assert!(view.resources[1].raw.is_some());
}

#[test]
fn unknown_fields_are_skipped() {
    let mut bytes = request(vec![(
        resource(Some("a")),
        vec![vec![span("x", vec![], None)]],
    )]);
    // Field 99 of every wire type at the top level: varint, fixed64, bytes, fixed32.
    for extra in [
        vec![0x98, 0x06, 0x2a],
        vec![0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8],
        vec![0x9a, 0x06, 2, 0xff, 0xff],
        vec![0x9d, 0x06, 1, 2, 3, 4],
        // A (deprecated) group holding a varint, skipped as prost skips it.
        vec![0x9b, 0x06, 0x08, 0x01, 0x9c, 0x06],
    ] {
        bytes.extend_from_slice(&extra);
    }
    let view = TraceExportView::parse(&bytes).unwrap();
    assert_eq!(view.spans.len(), 1);
    assert_eq!(view.spans[0].name, "x");
    assert_eq!(
        ExportTraceServiceRequest::decode(bytes.as_slice())
            .unwrap()
            .resource_spans
            .len(),
        1
    );
}

#[test]
fn malformed_input_is_refused_with_a_reason() {
    let good = request(vec![(
        resource(Some("a")),
        vec![vec![span("x", vec![], None)]],
    )]);
    for cut in 1..good.len() {
        let truncated = &good[..cut];
        let ours = TraceExportView::parse(truncated);
        let theirs = ExportTraceServiceRequest::decode(truncated);
        assert_eq!(
            ours.is_err(),
            theirs.is_err(),
            "cut at {cut}: {ours:?} vs {theirs:?}"
        );
    }
    // resource_spans sent as a varint.
    assert_eq!(
        TraceExportView::parse(&[0x08, 0x01]).unwrap_err(),
        WireError("field has the wrong wire type")
    );
    // A group (wire type 3) without its end, an end without a start, and
    // groups nested past prost's recursion limit.
    assert!(TraceExportView::parse(&[0x0b]).is_err());
    assert!(TraceExportView::parse(&[0x0c]).is_err());
    let deep: Vec<u8> = [0x9b, 0x06]
        .repeat(200)
        .into_iter()
        .chain([0x9c, 0x06].repeat(200))
        .collect();
    assert_eq!(
        TraceExportView::parse(&deep).unwrap_err(),
        WireError("groups nested too deeply")
    );
    assert!(ExportTraceServiceRequest::decode(deep.as_slice()).is_err());
    // Field number 0.
    assert!(TraceExportView::parse(&[0x02, 0x00]).is_err());
    // A span name that is not UTF-8.
    let mut bad = span("é", vec![], None);
    bad.name = "é".into();
    let mut bytes = request(vec![(None, vec![vec![bad]])]);
    let at = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap();
    bytes[at] = 0xff;
    assert_eq!(
        TraceExportView::parse(&bytes).unwrap_err(),
        WireError("string field is not valid UTF-8")
    );
    assert!(ExportTraceServiceRequest::decode(bytes.as_slice()).is_err());
}

#[test]
fn varints_follow_the_wire_format() {
    let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(r.varint().unwrap(), u64::MAX);
    let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
    assert!(r.varint().is_err());
    let mut r = Reader::new(&[0x80; 11]);
    assert_eq!(
        r.varint().unwrap_err(),
        WireError("varint longer than 10 bytes")
    );
    let mut r = Reader::new(&[0x80, 0x80]);
    assert_eq!(r.varint().unwrap_err(), WireError("truncated varint"));
    let mut r = Reader::new(&[0x96, 0x01]);
    assert_eq!(r.varint().unwrap(), 150);
}

#[test]
fn an_empty_export_has_nothing() {
    assert_eq!(
        TraceExportView::parse(&[]).unwrap(),
        TraceExportView::default()
    );
}

/// Mutated exports (bytes flipped, cut, spliced) never panic the reader, and
/// the reader never refuses what `prost` accepts: it checks a subset of what
/// a full decode checks.
#[test]
fn mutations_never_panic_and_never_refuse_what_prost_accepts() {
    let good = request(vec![
        (
            resource(Some("checkout")),
            vec![vec![
                span(
                    "GET /cart",
                    vec![
                        kv("http.response.status_code", Value::IntValue(200)),
                        kv("http.status_code", Value::StringValue("200".into())),
                    ],
                    Some(2),
                ),
                span("b", every_value_form(), None),
            ]],
        ),
        (None, vec![vec![span("c", vec![], Some(1))]]),
    ]);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut both_ok, mut both_err) = (0, 0);
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 3 {
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = next() as u8,
                1 => bytes.truncate(at.max(1)),
                _ => bytes.insert(at, next() as u8),
            }
        }
        let ours = TraceExportView::parse(&bytes);
        if let Ok(view) = &ours {
            // The checks refuse exactly what the full reads refuse.
            for s in &view.spans {
                assert_eq!(s.malformed.is_none(), span_detail(s.raw).is_ok());
            }
            for r in view.resources.iter().filter_map(|r| r.raw) {
                assert_eq!(check_resource(r).is_ok(), resource_attributes(r).is_ok());
            }
        }
        let theirs = ExportTraceServiceRequest::decode(bytes.as_slice());
        if let Ok(theirs) = &theirs {
            assert!(ours.is_ok(), "prost accepts {bytes:02x?} but: {ours:?}");
            assert_details_match(&ours.unwrap(), theirs);
            both_ok += 1;
        } else if ours.is_err() {
            both_err += 1;
        }
    }
    assert!(both_ok > 100 && both_err > 100, "{both_ok} / {both_err}");
}

/// Attributes in every value form, nested ones and an unset value included.
fn every_value_form() -> Vec<KeyValue> {
    let any = |v: Value| AnyValue { value: Some(v) };
    vec![
        kv("s", Value::StringValue("text \u{1F600}".into())),
        kv("b", Value::BoolValue(true)),
        kv("i", Value::IntValue(-42)),
        kv("d", Value::DoubleValue(0.25)),
        kv("bytes", Value::BytesValue(vec![0, 0xff])),
        kv(
            "arr",
            Value::ArrayValue(ArrayValue {
                values: vec![any(Value::IntValue(1)), AnyValue::default()],
            }),
        ),
        kv(
            "map",
            Value::KvlistValue(KeyValueList {
                values: vec![kv("inner", Value::BoolValue(false))],
            }),
        ),
        kv("strindex", Value::StringValueStrindex(3)),
        KeyValue {
            key: "unset".into(),
            ..Default::default()
        },
    ]
}

/// Every span's detail and resource attributes read in place equal what
/// `prost` decoded from the same bytes.
fn assert_details_match(view: &TraceExportView<'_>, decoded: &ExportTraceServiceRequest) {
    let spans = decoded
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    let mut count = 0;
    for (ours, theirs) in view.spans.iter().zip(spans) {
        let detail = span_detail(ours.raw).expect("prost decoded this span");
        let expected: Vec<_> = theirs
            .attributes
            .iter()
            .map(KeyValueView::from_kv)
            .collect();
        // Debug text, so that NaN equals NaN.
        assert_eq!(format!("{:?}", detail.attributes), format!("{expected:?}"));
        let message = theirs.status.as_ref().map_or("", |s| s.message.as_str());
        assert_eq!(detail.status_message, message);
        assert_eq!(
            ours.status_code,
            theirs.status.as_ref().map_or(0, |s| s.code)
        );
        count += 1;
    }
    assert_eq!(count, view.spans.len());
}

#[test]
fn span_detail_reads_every_value_form_as_prost_does() {
    let mut with_status = span("GET /x", every_value_form(), Some(2));
    with_status.attributes.push(kv("s", Value::IntValue(7)));
    let bytes = request(vec![
        (resource(Some("checkout")), vec![vec![with_status]]),
        (None, vec![vec![span("bare", vec![], None)]]),
    ]);
    let view = TraceExportView::parse(&bytes).unwrap();
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
    assert_details_match(&view, &decoded);
    let detail = span_detail(view.spans[0].raw).unwrap();
    assert_eq!(detail.status_message, "why");
    assert_eq!(detail.attributes.len(), 10, "duplicates are kept, in order");
    assert_eq!(detail.attributes[5].value, {
        Some(ValueView::Array(vec![Some(ValueView::Int(1)), None]))
    });
    let resource = resource_attributes(view.resources[0].raw.unwrap()).unwrap();
    assert_eq!(resource[1].key, "service.name");
    assert_eq!(resource[1].value, Some(ValueView::String("checkout")));
    assert_eq!(
        span_detail(view.spans[1].raw).unwrap(),
        SpanDetail::default()
    );
}

/// A field repeated on the wire means what it means to `prost`: the last
/// scalar wins, nested messages merge.
#[test]
fn repeated_fields_merge_as_in_prost() {
    let value = |v: Value| AnyValue { value: Some(v) }.encode_to_vec();
    let array = |n: i64| {
        value(Value::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(Value::IntValue(n)),
            }],
        }))
    };
    // KeyValue{key: "a", value: [1], value: [2]} and
    // KeyValue{key: "x", key: "b", value: "s", value: 5}.
    let mut merged_array = vec![0x0a, 1, b'a'];
    for part in [array(1), array(2)] {
        merged_array.extend([0x12, part.len() as u8]);
        merged_array.extend(part);
    }
    let mut replaced = vec![0x0a, 1, b'x', 0x0a, 1, b'b'];
    for part in [
        value(Value::StringValue("s".into())),
        value(Value::IntValue(5)),
    ] {
        replaced.extend([0x12, part.len() as u8]);
        replaced.extend(part);
    }
    // Span{attributes: [..], status: {code: 2}, status: {message: "m"}}.
    let mut raw = Vec::new();
    for kv in [&merged_array, &replaced] {
        raw.extend([0x4a, kv.len() as u8]);
        raw.extend(kv);
    }
    raw.extend([0x7a, 2, 0x18, 2, 0x7a, 3, 0x12, 1, b'm']);
    let theirs = Span::decode(raw.as_slice()).unwrap();
    let ours = span_detail(&raw).unwrap();
    let expected: Vec<_> = theirs
        .attributes
        .iter()
        .map(KeyValueView::from_kv)
        .collect();
    assert_eq!(ours.attributes, expected);
    assert_eq!(
        ours.attributes[0].value,
        Some(ValueView::Array(vec![
            Some(ValueView::Int(1)),
            Some(ValueView::Int(2))
        ]))
    );
    assert_eq!(ours.attributes[1].key, "b");
    assert_eq!(ours.attributes[1].value, Some(ValueView::Int(5)));
    assert_eq!(ours.status_message, "m");
    assert_eq!(
        read_span(0, &raw).unwrap().status_code,
        2,
        "the code survives the merge"
    );
    assert_eq!(theirs.status.unwrap().code, 2);
}

#[test]
fn span_detail_refuses_what_prost_refuses() {
    // A string attribute value that is not UTF-8.
    let bad = [0x4a, 6, 0x12, 4, 0x0a, 2, 0xc3, 0x28];
    assert!(Span::decode(bad.as_slice()).is_err());
    assert!(span_detail(&bad).is_err());
    // A bool value sent as a length-delimited field.
    let wrong_wire = [0x4a, 6, 0x12, 4, 0x12, 2, 1, 1];
    assert!(Span::decode(wrong_wire.as_slice()).is_err());
    assert!(span_detail(&wrong_wire).is_err());
    // The view says the same of every span, kept or not, and the export
    // stays readable.
    let malformed = |span: &[u8]| {
        fn wrap(field: u32, inner: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            prost::encoding::encode_key(
                field,
                prost::encoding::WireType::LengthDelimited,
                &mut out,
            );
            prost::encoding::encode_varint(inner.len() as u64, &mut out);
            out.extend_from_slice(inner);
            out
        }
        // ExportTraceServiceRequest.resource_spans → ResourceSpans.scope_spans → ScopeSpans.spans
        let export = wrap(1, &wrap(2, &wrap(2, span)));
        TraceExportView::parse(&export)
            .expect("the export is readable")
            .spans[0]
            .malformed
    };
    assert_eq!(malformed(&bad), Some("string field is not valid UTF-8"));
    assert_eq!(
        malformed(&wrong_wire),
        Some("field has the wrong wire type")
    );
    // A status message that is not UTF-8.
    let bad_status = [0x7a, 4, 0x12, 2, 0xc3, 0x28];
    assert!(span_detail(&bad_status).is_err());
    assert_eq!(
        malformed(&bad_status),
        Some("string field is not valid UTF-8")
    );
    let mut value = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 0..100 {
        value = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let deep = Span {
        attributes: vec![KeyValue {
            key: "deep".into(),
            value: Some(value),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec();
    assert!(span_detail(&deep).is_err());
    assert_eq!(malformed(&deep), Some("attribute values nested too deeply"));
    let fine = Span {
        attributes: vec![kv("a", Value::StringValue("b".into()))],
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(malformed(&fine), None);
    let resource = Resource {
        attributes: vec![kv("service.name", Value::StringValue("a".into()))],
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(check_resource(&resource), Ok(()));
}
