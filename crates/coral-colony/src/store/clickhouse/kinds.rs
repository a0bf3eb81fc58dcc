//! ClickHouse's values for each kind of column a row family's declaration
//! names (`coral_model::catalogue`'s kinds): [`ch_ty!`] is a kind's field
//! type in a RowBinary row, [`ch!`] a message field as that value and
//! [`from_ch!`] the field set back from it. Code generated from a family's
//! declaration uses only these. Timestamps are Int64 µs, booleans UInt8
//! (catalogue/clickhouse.rs).

/// A row's field type for kind `$kind`.
macro_rules! ch_ty {
    (Text) => { String };
    (I64) => { i64 };
    (U64) => { u64 };
    (F64) => { f64 };
    (Bool) => { u8 };
    (Code) => { i32 };
    (OptI32) => { Option<i32> };
    (ZeroNull) => { Option<i32> };
    (Nanos) => { i64 };
    (Secs) => { i64 };
    (Samples) => { String };
}

/// The message field `$e` of kind `$kind` as a row's value.
macro_rules! ch {
    (Text, $e:expr) => {
        $e.clone()
    };
    (Bool, $e:expr) => {
        u8::from($e)
    };
    (Code, $e:expr) => {
        $e as i32
    };
    (ZeroNull, $e:expr) => {
        ($e != 0).then_some($e)
    };
    (Nanos, $e:expr) => {
        $e / 1_000
    };
    (Secs, $e:expr) => {
        $e * 1_000_000
    };
    (Samples, $e:expr) => {
        coral_model::samples_to_json(&$e)
    };
    ($kind:ident, $e:expr) => {
        $e
    };
}

/// Sets the message field `$field` of kind `$kind` from the row's value
/// `$v`; a `Nanos` value is not read back.
macro_rules! from_ch {
    (Nanos, $field:expr, $v:expr) => {{
        let _ = $v;
    }};
    (Bool, $field:expr, $v:expr) => {
        $field = $v != 0
    };
    (Code, $field:expr, $v:expr) => {
        $field = $v as u32
    };
    (ZeroNull, $field:expr, $v:expr) => {
        $field = $v.unwrap_or(0)
    };
    (Secs, $field:expr, $v:expr) => {
        $field = $v / 1_000_000
    };
    (Samples, $field:expr, $v:expr) => {
        $field = coral_model::samples_from_json(&$v)
    };
    ($kind:ident, $field:expr, $v:expr) => {
        $field = $v
    };
}

/// A row family's ClickHouse row (`$row`, for `$message`), generated from
/// its declaration ([`coral_model::kept_span_columns`],
/// [`coral_model::beyla_span_columns`], [`coral_model::host_sample_columns`]):
/// the agent, the agent store's session and the row's seq_id, then the
/// declared columns in order; built from a message with `new`.
macro_rules! agent_row {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        #[doc = concat!("A row of `", stringify!($table), "`.")]
        #[derive(Debug, Clone, Row, Serialize, Deserialize)]
        pub(crate) struct $row {
            pub agent_id: String,
            pub session_id: String,
            pub seq_id: u64,
            $(pub $c: ch_ty!($k),)+
            $(pub $cc: ch_ty!($ck),)*
        }

        impl $row {
            pub(crate) fn new(agent_id: &str, session_id: &str, s: &$message) -> $row {
                $row {
                    agent_id: agent_id.to_owned(),
                    session_id: session_id.to_owned(),
                    seq_id: s.seq_id,
                    $($c: ch!($k, s.$f),)+
                    $($cc: ch!($ck, s.$cf),)*
                }
            }
        }
    };
}

/// `$row::into_proto`, the span read back as it was sent, its agent named:
/// for span families whose message names the agent
/// ([`coral_model::beyla_span_columns`]).
macro_rules! span_into_proto {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        impl $row {
            /// The span as it was sent, its agent named.
            pub(crate) fn into_proto(self) -> $message {
                let mut s = $message {
                    agent_id: self.agent_id,
                    seq_id: self.seq_id,
                    ..Default::default()
                };
                $(from_ch!($k, s.$f, self.$c);)+
                $(from_ch!($ck, s.$cf, self.$cc);)*
                s
            }
        }
    };
}
