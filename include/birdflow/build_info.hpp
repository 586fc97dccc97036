// Identity of this build, for banners and the provenance recorded in output files.
#pragma once

namespace birdflow
{
/* Returns the git commit the library was built from (12 hex digits, with "-modified" when tracked
   files had uncommitted changes, or "unknown" outside a git checkout). Not collective. */
const char *GitCommit();
} // namespace birdflow
