"""b2sdk's in-memory RawSimulator, corrected where it parts from the real B2 API.

`b2_list_buckets` "Lists buckets associated with an account" (Backblaze B2 native API
reference, b2_list_buckets: `accountId` is required and only that account's buckets come
back, also when `bucketName` is given). b2sdk's simulator returns every account's buckets,
so a provider could "see" a bucket of another account that the real API never shows; the
real way to learn that a name is taken is `b2_create_bucket` answering 400
`duplicate_bucket_name` (b2sdk raises DuplicateBucketName), which the simulator already does.

    api = make_api(B2HttpApiConfig(_raw_api_class=AccountScopedSimulator))
"""
from __future__ import annotations

from b2sdk.v2 import RawSimulator

__all__ = ["AccountScopedSimulator"]


class AccountScopedSimulator(RawSimulator):
    """RawSimulator whose list_buckets answers only the calling account's buckets."""

    def list_buckets(self, api_url, account_auth_token, account_id, bucket_id=None,
                     bucket_name=None):
        answer = super().list_buckets(api_url, account_auth_token, account_id,
                                      bucket_id=bucket_id, bucket_name=bucket_name)
        mine = [b for b in answer["buckets"] if b.get("accountId") == account_id]
        return dict(buckets=mine)
