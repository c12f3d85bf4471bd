"""Feature-family scans: safety-relevant concept families searched in a feature catalogue by label and probed
with contrastive prompts (`mechscope scan`)."""

from mechscope.scans.config import FamilyScanConfig
from mechscope.scans.families import ConceptFamily, FamilyScanError, load_families
from mechscope.scans.matching import FamilyMatch, match_family
from mechscope.scans.scan import FamilyProbe, FamilyScan, FamilyScanResult, scan_families

__all__ = ["ConceptFamily", "FamilyMatch", "FamilyProbe", "FamilyScan", "FamilyScanConfig", "FamilyScanError",
           "FamilyScanResult", "load_families", "match_family", "scan_families"]
