//! Countries: [`CountryCode`] and the [`CountryRouter`] that says which
//! countries Cita serves.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The officially assigned ISO 3166-1 alpha-2 codes.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Why a country code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an ISO 3166-1 alpha-2 code in upper case, such as PE or CL")]
pub struct CountryCodeError;

/// An ISO 3166-1 alpha-2 country code, upper case (`PE`, `CL`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Peru.
    pub const PE: CountryCode = CountryCode(*b"PE");
    /// Chile.
    pub const CL: CountryCode = CountryCode(*b"CL");

    /// Parses an assigned ISO 3166-1 alpha-2 code written in upper case.
    ///
    /// # Errors
    /// [`CountryCodeError`] for anything else (lower case, unassigned, other lengths).
    pub fn parse(s: &str) -> Result<Self, CountryCodeError> {
        let b = s.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
            return Err(CountryCodeError);
        }
        if !ISO_3166_ALPHA2.split(' ').any(|c| c == s) {
            return Err(CountryCodeError);
        }
        Ok(Self([b[0], b[1]]))
    }

    /// The code as text (`"PE"`).
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII upper-case letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The code in lower case (`"pe"`), as used in queue names and event sources.
    pub fn lowercase(&self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CountryCode {
    type Err = CountryCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The country is not one Cita serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("country {0} is not served")]
pub struct CountryNotServed(pub CountryCode);

/// Which countries are served. Built from configuration; an unserved
/// country is an error, never a silent default. Where a country's work
/// travels (a queue, a routing key) is the transport's business, not the
/// router's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryRouter {
    countries: BTreeSet<CountryCode>,
}

impl CountryRouter {
    /// A router serving exactly `countries`.
    pub fn for_countries(countries: impl IntoIterator<Item = CountryCode>) -> Self {
        Self {
            countries: countries.into_iter().collect(),
        }
    }

    /// Whether the country is served.
    pub fn serves(&self, country: CountryCode) -> bool {
        self.countries.contains(&country)
    }

    /// `Ok` for a served country.
    ///
    /// # Errors
    /// [`CountryNotServed`] for any other.
    pub fn ensure_served(&self, country: CountryCode) -> Result<(), CountryNotServed> {
        if self.serves(country) {
            Ok(())
        } else {
            Err(CountryNotServed(country))
        }
    }

    /// The served countries, in code order.
    pub fn countries(&self) -> impl Iterator<Item = CountryCode> + '_ {
        self.countries.iter().copied()
    }
}

impl Default for CountryRouter {
    /// PE and CL.
    fn default() -> Self {
        Self::for_countries([CountryCode::PE, CountryCode::CL])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assigned_upper_case_codes_only() {
        assert_eq!(CountryCode::parse("PE"), Ok(CountryCode::PE));
        assert_eq!(CountryCode::parse("pe"), Err(CountryCodeError));
        assert_eq!(CountryCode::parse("XX"), Err(CountryCodeError));
        assert_eq!(CountryCode::parse("PER"), Err(CountryCodeError));
        assert_eq!(ISO_3166_ALPHA2.split(' ').count(), 249);
    }

    #[test]
    fn default_router_serves_pe_and_cl() {
        let r = CountryRouter::default();
        assert_eq!(
            r.countries().collect::<Vec<_>>(),
            [CountryCode::CL, CountryCode::PE]
        );
        assert_eq!(r.ensure_served(CountryCode::PE), Ok(()));
        let ar = CountryCode::parse("AR").unwrap();
        assert!(!r.serves(ar));
        assert_eq!(r.ensure_served(ar), Err(CountryNotServed(ar)));
    }
}
