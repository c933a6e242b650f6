//! Closed vocabularies stored as short snake_case strings.
//!
//! Strings rather than native database enums so that SQLite and PostgreSQL share one
//! representation and adding a value is a code change, not an `ALTER TYPE`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, DeriveActiveEnum,
            Serialize, Deserialize,
        )]
        #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))", rename_all = "snake_case")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }
    };
}

string_enum!(
    /// What a staff user may do; see the role matrix in the design.
    Role { Admin, Manager, Agent, Analyst }
);

string_enum!(
    /// Where a contact happened. The same list serves interactions, conversations,
    /// touchpoints, feedback and SLA policies so that every channel is measured alike.
    Channel {
        Phone, Email, Chat, Sms, Whatsapp, Twitter, Facebook, Instagram, Review, InPerson, Web,
    }
);

string_enum!(
    /// The kind of a customer identity; the value is normalised per kind.
    IdentityKind { Email, Phone, Twitter, Facebook, Instagram, Whatsapp, Web, ExternalId }
);

string_enum!(
    /// Inbound (from the customer) or outbound (from us).
    Direction { Inbound, Outbound }
);

string_enum!(
    /// A public post everybody can see, or a private message.
    Visibility { PublicPost, Private }
);

string_enum!(
    /// Who wrote an interaction.
    AuthorKind { Customer, Agent, Bot }
);

string_enum!(
    /// Conversation workflow: open → pending → resolved → closed (reopen on new inbound).
    ConversationStatus { Open, Pending, Resolved, Closed }
);

string_enum!(
    /// Conversation priority, also a key of SLA policies.
    Priority { Low, Normal, High, Urgent }
);

string_enum!(
    /// How a touchpoint ended.
    TouchpointOutcome { Success, Failure, Abandoned }
);

string_enum!(
    /// The measure a survey asks for.
    SurveyKind { Nps, Csat, Ces }
);

string_enum!(
    /// Solicited (survey answer) or unsolicited feedback.
    FeedbackKind { Nps, Csat, Ces, SocialMention, Review, Comment }
);

string_enum!(
    /// Coarse sentiment label that goes with a score in [-1, 1].
    SentimentLabel { Negative, Neutral, Positive }
);

string_enum!(
    /// Alert life cycle: raised once, acknowledged by a person, resolved.
    AlertStatus { Open, Acknowledged, Resolved }
);

string_enum!(
    /// How urgent an alert is.
    AlertSeverity { Info, Warning, Critical }
);

string_enum!(
    /// Where a webhook delivery stands: pending (waiting for its next attempt),
    /// succeeded, or failed (gave up).
    DeliveryStatus { Pending, Succeeded, Failed }
);
