//! What a query costs: the complexity async-graphql computes at validation, with every
//! list that takes a page size counted as that many of its children (a field costs 1,
//! `customers(first: 50) { … }` costs 1 + 50 × the selection under it). The same figure
//! is checked against `MAX_COMPLEXITY` per query and charged to the caller's hourly
//! budget (`auth::cost_budget`), so what a caller pays follows what the server does.

use crate::pagination::DEFAULT_PAGE;

/// Largest page any list serves (events: 500; the others 100). A bigger request is
/// refused by its resolver, but is priced at this size so validation never overflows.
const PRICED_PAGE_CAP: usize = 500;

fn size(n: Option<i32>) -> usize {
    n.map_or(DEFAULT_PAGE as usize, |n| usize::try_from(n).unwrap_or(0).min(PRICED_PAGE_CAP))
}

/// A Relay connection paged by `first` or `last`.
pub fn page(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    1 + size(first.or(last)).max(1) * child_complexity
}

/// A list bounded by a required `first`.
pub fn list(first: i32, child_complexity: usize) -> usize {
    page(Some(first), None, child_complexity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_costs_its_size_in_children() {
        assert_eq!(page(Some(50), None, 4), 201);
        assert_eq!(page(None, Some(10), 4), 41);
        assert_eq!(page(None, None, 4), 1 + DEFAULT_PAGE as usize * 4);
        // Priced at the cap, however large the request; never free.
        assert_eq!(page(Some(i32::MAX), None, 2), 1001);
        assert_eq!(page(Some(-5), None, 2), 3);
        assert_eq!(list(20, 3), 61);
    }
}
