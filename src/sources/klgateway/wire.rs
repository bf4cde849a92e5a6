//! The wire model: just the FHIR resources and elements the gateway reads, as serde structs.
//!
//! Both formats end here: JSON through `serde_json`, XML through [`super::xml`], which turns FHIR
//! XML into the same JSON shape first. So that one model fits both, every repeating element
//! accepts one value or a list (XML cannot tell a list of one from a single element) and every
//! boolean accepts `true` or `"true"` (XML has only strings). Unknown elements are ignored.

use serde::de::{self, Deserializer};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

/// A repeating element: a JSON array, or a single value (XML, or a sloppy sender). Read
/// straight from the deserializer, without a tree in between.
fn many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use de::IntoDeserializer;
    use de::value::MapAccessDeserializer;
    struct Many<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Many<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a value or a list of values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(one) = seq.next_element()? {
                all.push(one);
            }
            Ok(all)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(|one| vec![one])
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            T::deserialize(de::value::BorrowedStrDeserializer::new(v)).map(|one| vec![one])
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(|one| vec![one])
        }
    }
    d.deserialize_any(Many(std::marker::PhantomData))
}

/// Reads a value into the wire model. The error names the element (`identifier[0].value`) and
/// the kind of value found and expected, never the value: serde's own text quotes it (a CPR
/// number sent as a JSON number, a megabyte of id).
pub(crate) fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, ShapeError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let what = describe(&e.inner().to_string());
        let path = if path.is_empty() || path == "." {
            "the resource".to_owned()
        } else {
            crate::domain::cut(&crate::domain::mask_cpr(&path), 80)
        };
        ShapeError(format!("{path}: {what}"))
    })
}

/// What serde found wrong, without the value it quotes: `invalid type: integer `101410001`,
/// expected a string` becomes `an integer where a string is expected`.
fn describe(serde: &str) -> String {
    let rest = serde
        .strip_prefix("invalid type: ")
        .or_else(|| serde.strip_prefix("invalid value: "));
    let Some(rest) = rest else {
        if serde.starts_with("invalid length") {
            return "a list of the wrong length".into();
        }
        if serde == BOOLEAN {
            return serde.into();
        }
        return "a value of the wrong shape".into();
    };
    let (found, expected) = rest
        .rsplit_once(", expected ")
        .unwrap_or((rest, "another kind"));
    let kind = found.split(['`', '"']).next().unwrap_or_default().trim();
    let kind = match kind {
        "" => "a value",
        "integer" => "a number",
        "floating point" => "a number",
        "string" => "a string",
        "boolean" => "a boolean",
        "map" => "an object",
        "sequence" => "a list",
        "null" => "null",
        _ => "a value",
    };
    let expected = crate::domain::cut(&crate::domain::mask_cpr(expected), 60);
    format!("{kind} where {expected} is expected")
}

/// The message of a boolean that is not one.
const BOOLEAN: &str = "expected a boolean (true or false)";

/// A FHIR boolean: JSON `true`/`false`, or the XML `value` text `"true"`/`"false"`.
fn boolean<'de, D>(d: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    struct Boolean;
    impl<'de> de::Visitor<'de> for Boolean {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(BOOLEAN)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(E::custom(BOOLEAN)),
            }
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(BOOLEAN))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(BOOLEAN))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(BOOLEAN))
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(BOOLEAN))
        }
        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(BOOLEAN))
        }
    }
    d.deserialize_any(Boolean)
}

/// A Bundle: a delivery report, an incremental delivery or a search result page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Bundle {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub timestamp: Option<String>,
    #[serde(deserialize_with = "many")]
    pub link: Vec<Link>,
    #[serde(deserialize_with = "many")]
    pub entry: Vec<Entry>,
}

/// A Bundle whose entries are read one at a time: the document's text stays as it came and only
/// one entry at a time becomes a tree, so reading takes memory in proportion to the document
/// (see [`Entries`]). Built from a [`Bundle`] (entries already trees) or from a [`LazyBundle`].
#[derive(Debug)]
pub(crate) struct Doc<'a> {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    pub kind: Option<String>,
    pub timestamp: Option<String>,
    pub link: Vec<Link>,
    pub entry: Entries<'a>,
}

impl From<Bundle> for Doc<'_> {
    fn from(b: Bundle) -> Self {
        Doc {
            id: b.id,
            meta: b.meta,
            kind: b.kind,
            timestamp: b.timestamp,
            link: b.link,
            entry: Entries::Parsed(b.entry),
        }
    }
}

impl<'a> From<LazyBundle<'a>> for Doc<'a> {
    fn from(b: LazyBundle<'a>) -> Self {
        Doc {
            id: b.id,
            meta: b.meta,
            kind: b.kind,
            timestamp: b.timestamp,
            link: b.link,
            entry: Entries::Lazy(b.entry),
        }
    }
}

/// A Bundle's entries: trees, or the text of each (parsed when it is its turn).
#[derive(Debug)]
pub(crate) enum Entries<'a> {
    Parsed(Vec<Entry>),
    Lazy(Vec<LazyEntry<'a>>),
}

impl<'a> Entries<'a> {
    pub fn len(&self) -> usize {
        match self {
            Entries::Parsed(v) => v.len(),
            Entries::Lazy(v) => v.len(),
        }
    }

    /// Whether any entry's resource is a Bundle (an incremental delivery).
    pub fn any_bundle(&self) -> bool {
        match self {
            Entries::Parsed(v) => v
                .iter()
                .any(|e| e.resource.as_ref().is_some_and(|r| header(r).0 == "Bundle")),
            Entries::Lazy(v) => v.iter().any(|e| {
                e.resource.is_some_and(|r| {
                    serde_json::from_str::<TypeOnly>(r.get()).is_ok_and(|t| {
                        t.resource_type.as_ref().and_then(Value::as_str) == Some("Bundle")
                    })
                })
            }),
        }
    }

    /// The entries in order, each resource a tree or its text.
    pub fn into_entries(self) -> impl Iterator<Item = Next<'a>> + 'a {
        let (parsed, lazy) = match self {
            Entries::Parsed(v) => (Some(v.into_iter()), None),
            Entries::Lazy(v) => (None, Some(v.into_iter())),
        };
        parsed
            .into_iter()
            .flatten()
            .map(|e| Next {
                full_url: e.full_url,
                resource: e.resource.map(Res::Tree),
                search: e.search,
            })
            .chain(lazy.into_iter().flatten().map(|e| Next {
                full_url: e.full_url,
                resource: e.resource.map(Res::Text),
                search: e.search,
            }))
    }
}

/// One entry of a Bundle as the mapping takes it.
#[derive(Debug)]
pub(crate) struct Next<'a> {
    pub full_url: Option<String>,
    pub resource: Option<Res<'a>>,
    pub search: Option<Search>,
}

/// An entry's resource: a tree (the whole document was read as one), or its text, read
/// straight into the wire model. Whatever the text path does not take as it is (a duplicate
/// key, a value of the wrong type, a `resourceType` that is not a string) is read through the
/// tree instead, so the result and every message are the tree's: the two paths agree.
#[derive(Debug)]
pub(crate) enum Res<'a> {
    Tree(Value),
    Text(&'a serde_json::value::RawValue),
}

/// The `resourceType` of a resource's text when it is the first member, a plain name, and
/// the only `resourceType` in the text (a second one, even nested, leaves it to the tree).
fn leading_type(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"resourceType\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let name = &rest[..rest.find('"')?];
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic());
    (plain && text.matches("\"resourceType\"").nth(1).is_none()).then_some(name)
}

/// A resource read straight from its text by its type.
enum Direct {
    Read(Box<Resource>),
    /// A type a delivery report does not hold as a resource.
    NotReported,
    /// The text is not as the wire model takes it (the tree gives the message).
    Unreadable,
}

fn direct(kind: &str, text: &str) -> Direct {
    fn to<T: DeserializeOwned>(text: &str, f: fn(T) -> Resource) -> Direct {
        serde_json::from_str(text).map_or(Direct::Unreadable, |r| Direct::Read(Box::new(f(r))))
    }
    match kind {
        "Patient" => to(text, Resource::Patient),
        "CarePlan" => to(text, Resource::CarePlan),
        "Procedure" => to(text, Resource::Procedure),
        "Encounter" => to(text, Resource::Encounter),
        "Condition" => to(text, Resource::Condition),
        "Goal" => to(text, Resource::Goal),
        "Observation" => to(text, Resource::Observation),
        _ => Direct::NotReported,
    }
}

/// A resource's type and id as strings, read from its text.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> Res<'a> {
    /// The tree of the resource (of its text: `null` where the text is not one, as checked
    /// before).
    pub fn into_tree(self) -> Value {
        match self {
            Res::Tree(v) => v,
            Res::Text(t) => serde_json::from_str(t.get()).unwrap_or(Value::Null),
        }
    }

    /// The text of the resource, when it came as text.
    pub fn text(&self) -> Option<&'a str> {
        match self {
            Res::Tree(_) => None,
            Res::Text(t) => Some(t.get()),
        }
    }

    /// `resourceType` and `id` ([`header`]).
    pub fn header(&self) -> (String, Option<String>) {
        match self {
            Res::Tree(v) => header(v),
            Res::Text(t) => match serde_json::from_str::<Head>(t.get()) {
                Ok(h) => (
                    h.kind.map(|k| k.into_owned()).unwrap_or_default(),
                    h.id.map(|i| i.into_owned()),
                ),
                Err(_) => header(&serde_json::from_str(t.get()).unwrap_or(Value::Null)),
            },
        }
    }

    /// [`Res::header`] and [`Res::parse`] in one: a resource of a type a delivery report
    /// holds, whose text opens with its `resourceType` (as every sender writes it) and reads
    /// as it is, is read in one pass; anything else as the two would.
    pub fn read(self) -> ((String, Option<String>), Result<Parsed, ShapeError>) {
        if let Res::Text(t) = &self
            && let Some(kind) = leading_type(t.get())
            && let Direct::Read(r) = direct(kind, t.get())
        {
            let id = r.id().map(str::to_owned);
            return ((kind.to_owned(), id), Ok(Parsed::Resource(r)));
        }
        let header = self.header();
        (header, self.parse())
    }

    /// Reads the resource into the wire model by its `resourceType` ([`parse_resource`]).
    pub fn parse(self) -> Result<Parsed, ShapeError> {
        let text = match self {
            Res::Tree(v) => return parse_resource(v),
            Res::Text(t) => t.get(),
        };
        if let Ok(h) = serde_json::from_str::<Head>(text) {
            let kind = h.kind.as_deref().unwrap_or_default();
            match direct(kind, text) {
                Direct::Read(r) => return Ok(Parsed::Resource(r)),
                Direct::NotReported if kind == "Bundle" => return Ok(Parsed::Bundle),
                Direct::NotReported => return Ok(Parsed::Other),
                Direct::Unreadable => {}
            }
        }
        parse_resource(serde_json::from_str(text).unwrap_or(Value::Null))
    }
}

/// Just a resource's type.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "resourceType", default)]
    resource_type: Option<Value>,
}

/// A Bundle's top level with each entry's resource left as text. Reading into it checks the
/// whole document's syntax; anything it does not take as it is (an entry that is not a list, a
/// field of the wrong type, a duplicate key) makes the reader fall back to the tree of the
/// whole document, whose messages are the ones to give.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LazyBundle<'a> {
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub meta: Option<Meta>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default, deserialize_with = "many")]
    pub link: Vec<Link>,
    #[serde(default, borrow)]
    pub entry: Vec<LazyEntry<'a>>,
}

/// `Bundle.entry` with its resource as text.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LazyEntry<'a> {
    #[serde(default)]
    pub full_url: Option<String>,
    #[serde(default, borrow)]
    pub resource: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    pub search: Option<Search>,
}

/// `Bundle.link`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Link {
    pub relation: Option<String>,
    pub url: Option<String>,
}

/// `Bundle.entry`: the resource stays generic until its type is known.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Entry {
    pub full_url: Option<String>,
    pub resource: Option<Value>,
    pub search: Option<Search>,
}

/// `Bundle.entry.search`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Search {
    pub mode: Option<String>,
}

/// `Resource.meta`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Meta {
    pub last_updated: Option<String>,
    #[serde(deserialize_with = "many")]
    pub profile: Vec<String>,
}

/// A `Coding`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A `CodeableConcept`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Concept {
    #[serde(deserialize_with = "many")]
    pub coding: Vec<Coding>,
}

/// An `Identifier`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Identifier {
    pub system: Option<String>,
    pub value: Option<String>,
}

/// A `Reference`: a literal reference, or (for the custodian) a logical one by identifier.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Reference {
    pub reference: Option<String>,
    pub identifier: Option<Identifier>,
}

/// A `Period`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Period {
    pub start: Option<String>,
    pub end: Option<String>,
}

/// An `Extension` with a reference value (the only kind read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Extension {
    pub url: Option<String>,
    pub value_reference: Option<Reference>,
}

/// `Patient` (klgateway-care-citizen).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Patient {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    #[serde(deserialize_with = "many")]
    pub identifier: Vec<Identifier>,
    #[serde(deserialize_with = "boolean")]
    pub active: Option<bool>,
    #[serde(deserialize_with = "boolean")]
    pub deceased_boolean: Option<bool>,
    pub deceased_date_time: Option<String>,
    pub managing_organization: Option<Reference>,
}

/// `CarePlan` (klgateway-care-planned-intervention).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct CarePlan {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub subject: Option<Reference>,
    pub period: Option<Period>,
    #[serde(deserialize_with = "many")]
    pub activity: Vec<Activity>,
}

/// `CarePlan.activity`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Activity {
    pub detail: Option<ActivityDetail>,
}

/// `CarePlan.activity.detail`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ActivityDetail {
    pub code: Option<Concept>,
    #[serde(deserialize_with = "many")]
    pub reason_reference: Vec<Reference>,
}

/// `Procedure` (klgateway-care-completed-intervention).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Procedure {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub code: Option<Concept>,
    pub subject: Option<Reference>,
    pub performed_date_time: Option<String>,
    #[serde(deserialize_with = "many")]
    pub reason_reference: Vec<Reference>,
}

/// `Encounter` (klgateway-care-general-encounter, or the old klgateway-care-encounter).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Encounter {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    #[serde(deserialize_with = "many")]
    pub extension: Vec<Extension>,
    pub status: Option<String>,
    pub class: Option<Coding>,
    #[serde(rename = "type", deserialize_with = "many")]
    pub kind: Vec<Concept>,
    pub subject: Option<Reference>,
    pub period: Option<Period>,
    #[serde(deserialize_with = "many")]
    pub reason_reference: Vec<Reference>,
}

/// `Condition` (klgateway-care-condition).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Condition {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    #[serde(deserialize_with = "many")]
    pub extension: Vec<Extension>,
    pub clinical_status: Option<Concept>,
    pub verification_status: Option<Concept>,
    #[serde(deserialize_with = "many")]
    pub category: Vec<Concept>,
    pub severity: Option<Concept>,
    pub code: Option<Concept>,
    pub subject: Option<Reference>,
}

/// `Goal` (klgateway-care-goal).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Goal {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    pub lifecycle_status: Option<String>,
    pub subject: Option<Reference>,
    #[serde(deserialize_with = "many")]
    pub target: Vec<GoalTarget>,
    #[serde(deserialize_with = "many")]
    pub addresses: Vec<Reference>,
}

/// `Goal.target`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct GoalTarget {
    pub detail_codeable_concept: Option<Concept>,
}

/// `Observation` (follow-up, matter-of-interest or citizen's own observation).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Observation {
    pub id: Option<String>,
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub code: Option<Concept>,
    pub subject: Option<Reference>,
    #[serde(deserialize_with = "many")]
    pub focus: Vec<Reference>,
    pub effective_date_time: Option<String>,
    pub value_codeable_concept: Option<Concept>,
}

/// One resource of a delivery report, by type.
#[derive(Debug, Clone)]
pub(crate) enum Resource {
    Patient(Patient),
    CarePlan(CarePlan),
    Procedure(Procedure),
    Encounter(Encounter),
    Condition(Condition),
    Goal(Goal),
    Observation(Observation),
}

impl Resource {
    /// The FHIR resource type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Resource::Patient(_) => "Patient",
            Resource::CarePlan(_) => "CarePlan",
            Resource::Procedure(_) => "Procedure",
            Resource::Encounter(_) => "Encounter",
            Resource::Condition(_) => "Condition",
            Resource::Goal(_) => "Goal",
            Resource::Observation(_) => "Observation",
        }
    }

    /// The resource id.
    pub fn id(&self) -> Option<&str> {
        match self {
            Resource::Patient(r) => r.id.as_deref(),
            Resource::CarePlan(r) => r.id.as_deref(),
            Resource::Procedure(r) => r.id.as_deref(),
            Resource::Encounter(r) => r.id.as_deref(),
            Resource::Condition(r) => r.id.as_deref(),
            Resource::Goal(r) => r.id.as_deref(),
            Resource::Observation(r) => r.id.as_deref(),
        }
    }

    /// `meta`.
    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Resource::Patient(r) => r.meta.as_ref(),
            Resource::CarePlan(r) => r.meta.as_ref(),
            Resource::Procedure(r) => r.meta.as_ref(),
            Resource::Encounter(r) => r.meta.as_ref(),
            Resource::Condition(r) => r.meta.as_ref(),
            Resource::Goal(r) => r.meta.as_ref(),
            Resource::Observation(r) => r.meta.as_ref(),
        }
    }

    /// `subject` (a Patient has none).
    pub fn subject(&self) -> Option<&Reference> {
        match self {
            Resource::Patient(_) => None,
            Resource::CarePlan(r) => r.subject.as_ref(),
            Resource::Procedure(r) => r.subject.as_ref(),
            Resource::Encounter(r) => r.subject.as_ref(),
            Resource::Condition(r) => r.subject.as_ref(),
            Resource::Goal(r) => r.subject.as_ref(),
            Resource::Observation(r) => r.subject.as_ref(),
        }
    }
}

/// What a generic resource turned out to be.
pub(crate) enum Parsed {
    /// A resource a delivery report may hold.
    Resource(Box<Resource>),
    /// A nested Bundle (allowed only in an incremental delivery or a search page).
    Bundle,
    /// Any other resource type.
    Other,
}

/// Why a value could not be read into the wire model: the element's path and the kind of
/// value found, never the value itself.
#[derive(Debug)]
pub(crate) struct ShapeError(pub String);

/// Reads a generic resource into the wire model by its `resourceType`.
pub(crate) fn parse_resource(value: Value) -> Result<Parsed, ShapeError> {
    fn to<T: DeserializeOwned>(v: Value) -> Result<T, ShapeError> {
        from_value(v)
    }
    let kind = value
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(match kind.as_str() {
        "Patient" => Parsed::Resource(Box::new(Resource::Patient(to(value)?))),
        "CarePlan" => Parsed::Resource(Box::new(Resource::CarePlan(to(value)?))),
        "Procedure" => Parsed::Resource(Box::new(Resource::Procedure(to(value)?))),
        "Encounter" => Parsed::Resource(Box::new(Resource::Encounter(to(value)?))),
        "Condition" => Parsed::Resource(Box::new(Resource::Condition(to(value)?))),
        "Goal" => Parsed::Resource(Box::new(Resource::Goal(to(value)?))),
        "Observation" => Parsed::Resource(Box::new(Resource::Observation(to(value)?))),
        "Bundle" => Parsed::Bundle,
        _ => Parsed::Other,
    })
}

/// The type and id of a generic resource, for messages.
pub(crate) fn header(value: &Value) -> (String, Option<String>) {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    (text("resourceType").unwrap_or_default(), text("id"))
}
