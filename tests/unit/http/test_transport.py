"""The transport: a urllib3 pool per origin, found once, shared with sessions, closed at the end."""

from dictamesh_connectors.http import HTTPConfig, HTTPConnector

from ...integration.http.servers import LocalServer, ScriptedApp


def test_one_pool_per_origin_shared_with_sessions_replaced_once_closed():
    with LocalServer(ScriptedApp()) as server:
        connector = HTTPConnector(HTTPConfig(base_url=server.url))
        connector.connect()
        try:
            transport = connector._handle
            assert connector.get("/a").status_code == 200
            pool = next(iter(transport._pools.values()))
            assert connector.get("/b?x=1").status_code == 200
            assert list(transport._pools.values()) == [pool]  # found again, not rebuilt
            session = connector.session()
            assert session.get(server.url + "/c").status_code == 200
            assert len(transport.poolmanager.pools) == 1  # the session used the same pool
            pool.close()
            transport.poolmanager.pools.clear()
            assert connector.get("/d").status_code == 200
            fresh = next(iter(transport._pools.values()))
            assert fresh is not pool
        finally:
            connector.disconnect()
        assert fresh.pool is None  # disconnect() closed it and its idle connection
