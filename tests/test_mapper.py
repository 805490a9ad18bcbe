"""The mapper's assignment endpoint against hostile bodies: refused with a JSON 400, and the mapper carries on."""

from __future__ import annotations

import cbor2

from .conftest import TOKEN, ClusterFactory

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_bad_assignments_to_a_mapper(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(mappers=1, reducers=1)
    for body in [b"\xff", cbor2.dumps({"v": 1, "type": "assignment"}), cbor2.dumps("hello")]:
        async with cluster.session.post(cluster.mappers[0].url + "/internal/v1/assign", data=body,
                                        headers=AUTH) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "bad_wire"
    assert await cluster.run_text("x y x") == {"x": 2, "y": 1}
